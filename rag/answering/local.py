"""Answer mode ``local``: the chat answerer talking to a packaged GGUF model that this process serves itself.

The server starts on the first answer (assembling the model on first use),
so ``rag ask --mode local`` and ``RAG_ANSWER_MODE=local rag serve`` need
nothing else running. A model that is not installed or does not start is an
upstream failure like any other: the pipeline falls back to the extractive
answer and says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.answering.openai_chat import OpenAIChatAnswerer
from rag.local_server import start_local_server
from rag.settings import LLMSettings, LocalSettings


class LocalModelAnswerer(OpenAIChatAnswerer):
    mode = "local"

    def __init__(self, llm: LLMSettings, local: LocalSettings, data_dir: Path) -> None:
        # llama.cpp enforces the JSON schema; a retry of a timed-out local answer would only double the wait
        super().__init__(llm.model_copy(update={"max_retries": 0, "output": "json"}))
        self.local = local
        self.data_dir = Path(data_dir)
        self._served_model: str | None = None

    @property
    def model(self) -> str:
        return self._served_model or self.local.model

    def connect(self) -> Any:
        from openai import OpenAI

        server = start_local_server(self.local, self.data_dir)
        self._served_model = server.model_name
        return OpenAI(base_url=server.base_url, api_key="local", timeout=self.settings.timeout, max_retries=0)
