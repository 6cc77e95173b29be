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


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (Debian's postgresql 15, loopback, a temp directory).
    Missing binaries skip the test, or fail it where CI requires them (CI_REQUIRE_POSTGRES=1)."""
    import os

    from kit import PostgresServer

    if not PostgresServer.available():
        reason = "PostgreSQL 15 is not installed (scripts/setup-postgres.sh installs it)"
        if os.environ.get("CI_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (CI_REQUIRE_POSTGRES=1) but {reason}")
        pytest.skip(reason)
    import shutil
    import tempfile
    from pathlib import Path

    home = Path(tempfile.mkdtemp(prefix="rag-test-postgres-"))  # not under pytest's root-only temp directory
    server = PostgresServer(home).start()
    yield server
    server.stop(mode="immediate")
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def database_url(postgres_server, request) -> str:
    """A new, empty database on the session's server, for one test."""
    import re

    import psycopg

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:40] + f"_{id(request) % 100000}"
    with psycopg.connect(postgres_server.url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.url.rsplit("/", 1)[0] + "/" + name
