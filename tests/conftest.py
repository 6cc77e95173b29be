"""Every test gets its own data directory and no provider keys from the environment."""

from __future__ import annotations

import pytest

from rag.settings import get_settings


#: The answerability model is calibrated on MiniLM features; the fast tier's hash embedder gives lower cosines,
#: so fast tests answer above this lower threshold (tests/api/apiutil.py uses the same value). Slow tests run the
#: real model at the model's own recommended threshold.
FAST_TIER_MIN_CONFIDENCE = "0.02"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch, request):
    import os

    for name in list(os.environ):
        if name.startswith("RAG_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path_factory.mktemp("rag-data")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("RAG_ANSWER_MIN_CONFIDENCE", FAST_TIER_MIN_CONFIDENCE)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
