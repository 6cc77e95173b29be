"""Fixtures for the integration tests: a private copy of the bundled corpus,
settings rooted in ``tmp_path`` (embedded Chroma there), a call-counting hash
embedder, and a ``RagService`` factory that closes what it opened."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest
from pydantic import PrivateAttr

from kit import clear_env, hash_settings
from rag.embeddings import HashEmbedding
from index.service import RagService
from rag.settings import BUNDLED_CORPUS, Settings


class CountingHashEmbedding(HashEmbedding):
    """The real hash embedder, recording every text it is asked to embed."""

    _texts: list[str] = PrivateAttr(default_factory=list)
    _calls: int = PrivateAttr(default=0)

    def _get_text_embedding(self, text: str) -> list[float]:
        self._calls += 1
        self._texts.append(text)
        return super()._get_text_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        self._calls += 1
        self._texts.extend(texts)
        return super()._get_text_embeddings(texts)

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def texts(self) -> list[str]:
        return list(self._texts)

    def reset(self) -> None:
        self._calls = 0
        self._texts.clear()


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A writable copy of the bundled 5-article corpus."""
    target = tmp_path / "corpus"
    shutil.copytree(BUNDLED_CORPUS, target)
    assert len(list(target.glob("*.txt"))) == 5
    return target


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings with every store under ``tmp_path/data`` and the hash embedder.

    ``RAG_*`` variables of the calling shell are cleared so they cannot point
    the tests at a real Chroma server or chat model.
    """
    clear_env(monkeypatch)  # also drops the fast tier's confidence threshold: these tests use the model's

    def make(**overrides) -> Settings:
        overrides.setdefault("corpus_dir", tmp_path / "corpus")
        return hash_settings(overrides.pop("data_dir", tmp_path / "data"), **overrides)

    return make


@pytest.fixture
def counting_embedder() -> type[CountingHashEmbedding]:
    """The class, for tests that need more than one counting embedder."""
    return CountingHashEmbedding


@pytest.fixture
def embedder() -> CountingHashEmbedding:
    return CountingHashEmbedding()


@pytest.fixture
def make_service() -> Iterator[Callable[..., RagService]]:
    """``make_service(settings, embedder=None)``; every service is closed at teardown."""
    opened: list[RagService] = []

    def make(settings: Settings, embedder=None) -> RagService:
        service = RagService(settings, embedder=embedder)
        opened.append(service)
        return service

    yield make
    for service in opened:
        service.close()


@pytest.fixture
def service(make_settings, make_service, embedder) -> RagService:
    """A service over an empty index in ``tmp_path`` with the counting hash embedder."""
    return make_service(make_settings(), embedder=embedder)
