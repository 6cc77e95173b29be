"""Fixtures for the API tests: settings rooted in a temporary folder with the
hash embedder (fast, offline, discriminating), TestClients that run the app's
lifespan (start-up ingests the bundled corpus), and small helpers."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from apiutil import make_settings
from kit import clear_env
from api.app import create_app
from rag.settings import Settings


@pytest.fixture(scope="module")
def module_env() -> Iterator[None]:
    """What tests/conftest.py does per test, for module-scoped apps (built before it runs)."""
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        yield


@pytest.fixture(scope="module")
def shared(tmp_path_factory, module_env) -> Iterator[TestClient]:
    """One started app over the bundled corpus, for tests that only read."""
    settings = make_settings(tmp_path_factory.mktemp("shared-data"))
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture()
def start_app(tmp_path) -> Iterator[Callable[..., TestClient]]:
    """Start a fresh app (function scope): ``start_app(key=..., **settings) -> client``; closed at teardown."""
    with ExitStack() as stack:
        counter = iter(range(1000))

        def start(*, settings: Settings | None = None, service=None, raise_server_exceptions: bool = True,
                  key: str | None = None, **overrides) -> TestClient:
            if settings is None:
                settings = make_settings(tmp_path / f"data{next(counter)}", key=key, **overrides)
            client = TestClient(create_app(settings, service=service),
                                raise_server_exceptions=raise_server_exceptions)
            stack.enter_context(client)
            client.settings = settings  # for tests that look at the data dir
            return client

        yield start


@pytest.fixture()
def client(start_app) -> TestClient:
    """A fresh app over the bundled corpus, for tests that change the index."""
    return start_app()
