"""The composition root: opens the stores (``index/``) and wires the ask
pipeline. The CLI, the API and the evaluation all start from here."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from llama_index.core.embeddings import BaseEmbedding

from index.docstore import DocStore
from index.ingest import Ingestor, IngestReport
from index.vectors import VectorIndex
from rag.answering.extractive import ExtractiveAnswerer
from rag.answering.openai_chat import OpenAIChatAnswerer
from rag.embeddings import build_embedder
from rag.pipeline import AskPipeline
from rag.retrieval import HybridRetriever
from rag.sentence_vectors import SentenceVectors
from rag.settings import Settings
from rag.support import SupportChecker
from rag.types import Answer


class RagService:
    def __init__(self, settings: Settings, embedder: BaseEmbedding | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or build_embedder(settings.embed)
        data_dir = Path(settings.data_dir)
        self.vectors = VectorIndex(settings.chroma, data_dir)  # first: an unreachable store creates nothing
        self.docstore = DocStore(data_dir / f"{settings.chroma.collection}.sqlite3", self.embedder.model_id)
        self.sentence_vectors = SentenceVectors(self.embedder)

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.docstore, self.vectors, self.embedder, self.settings.chunk,
                        batch_size=self.settings.embed.batch_size)

    @cached_property
    def pipeline(self) -> AskPipeline:
        s = self.settings
        retriever = HybridRetriever(self.vectors, self.docstore, self.embedder, s.retrieve)
        checker = SupportChecker(s.verify, self.sentence_vectors)
        return AskPipeline(
            s, retriever,
            {"extractive": lambda: ExtractiveAnswerer(s.answer, self.sentence_vectors, self.docstore,
                                                      retriever.retrieve),
             "openai": lambda: OpenAIChatAnswerer(s.llm)},
            checker, is_empty=lambda: self.docstore.chunk_count() == 0)

    def ingest(self, path: Path | None = None, *, prune: bool = True, progress: bool = False) -> IngestReport:
        return self.ingestor.ingest_path(path or self.settings.corpus_dir, prune=prune, progress=progress)

    def ask(self, question: str, top_k: int | None = None, mode: str | None = None) -> Answer:
        return self.pipeline.ask(question, top_k=top_k, mode=mode)

    def close(self) -> None:
        self.docstore.close()


def reset_index(settings: Settings) -> None:
    """Delete the configured collection and its docstore (for a model change or a fresh start)."""
    VectorIndex.drop(settings.chroma, Path(settings.data_dir))
    base = Path(settings.data_dir) / f"{settings.chroma.collection}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{base}{suffix}").unlink(missing_ok=True)
