"""Every test gets its own data directory and no provider keys from the environment."""

from __future__ import annotations

import pytest

from kit import FAST_TIER_MIN_CONFIDENCE, clear_env
from rag.settings import get_settings


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch, request):
    clear_env(monkeypatch)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path_factory.mktemp("rag-data")))
    if request.node.get_closest_marker("slow") is None:  # see kit.FAST_TIER_MIN_CONFIDENCE
        monkeypatch.setenv("RAG_ANSWER_MIN_CONFIDENCE", str(FAST_TIER_MIN_CONFIDENCE))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
