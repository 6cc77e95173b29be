"""Every test gets its own data directory and no provider keys from the environment."""

from __future__ import annotations

import pytest

from rag.settings import get_settings


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("RAG_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path_factory.mktemp("rag-data")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
