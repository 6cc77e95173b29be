"""Property-based fuzzing of every operation of the live app against its own OpenAPI schema (schemathesis).

Slow tier. The real app (hash embedder, the bundled corpus ingested into a temporary data directory) is called
in-process over ASGI with requests that schemathesis generates from the app's ``/openapi.json``, valid and
invalid ones, for every operation in the schema. Every response must:

- not be a server error (5xx);
- have a status the operation documents, with a documented content type;
- match the documented schema: the success model, or the error envelope for every error status.

Three runs: no key configured; ``RAG_API_KEY`` configured and requests sent with the key; configured and sent
without it (every /v1 operation then answers the 401 envelope; the operations routes stay open). Uploads and
deletes act on each app's temporary index only. Uploads get a property test of their own (below): schemathesis
cannot name the files it sends.

Streams (``/v1/ask/stream``, ``/v1/chat/completions`` with ``stream: true``): schemathesis reads the
``text/event-stream`` body into events and checks each against the documented ``itemSchema`` (the event name,
a string ``data``); the JSON inside ``data`` is not checked here (tests/api/test_streaming.py does that).

Bounded for CI: derandomized generation with a fixed seed (the same cases every run), MAX_EXAMPLES generated
cases per operation besides schemathesis's coverage cases, no example database written to disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.python import asgi

from apiutil import BUNDLED_IDS, KEY, make_settings
from kit import free_port
from api.app import create_app
from rag.errors import LocalModelError

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 100
SEED = 20261122

CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
    },
    "phases": {"stateful": {"enabled": False}},
})
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                # generating a schema's cases can be slow on a busy CI runner; it says nothing about the app
                suppress_health_check=[HealthCheck.too_slow])

#: The schema the tests are generated from, read when this module is collected (parametrizing needs the
#: operations then): the app's own OpenAPI document, from an app built but not started. The live apps below
#: serve the same document (checked when they start).
SCHEMA = schemathesis.openapi.from_dict(create_app(make_settings(Path("never-opened"))).openapi(), config=CONFIG)
BEARER = {"Authorization": f"Bearer {KEY}"}


@SCHEMA.hook
def flatmap_path_parameters(context, path_parameters: dict) -> st.SearchStrategy:
    """A generated document id, or one that exists: GET and DELETE reach their 200 too (on the temp index)."""
    if "doc_id" not in (path_parameters or {}):
        return st.just(path_parameters)
    return st.one_of(st.just(path_parameters),
                     st.sampled_from(BUNDLED_IDS).map(lambda doc_id: {**path_parameters, "doc_id": doc_id}))


def _no_local_model(*_args, **_kwargs):
    raise LocalModelError("the local model is not started in the fuzz test")


@pytest.fixture(scope="module")
def hermetic(module_env) -> Iterator[None]:
    """`local` mode fails at once, as where the model is not installed (a fallback answer, not a 1 GB load)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("rag.answering.local.start_local_server", _no_local_model)
        yield


def _live(data_dir: Path, key: str | None) -> Iterator[FastAPI]:
    """The app started by schemathesis's in-process client (start-up ingests the bundled corpus), stopped at
    the end. Nothing listens at the chat server's URL: the `openai` mode fails fast and falls back."""
    settings_ = make_settings(data_dir, key=key)
    settings_.llm.base_url = f"http://127.0.0.1:{free_port()}/v1"
    settings_.llm.max_retries = 0
    settings_.api.job_threshold_bytes = 120  # some uploads below become jobs (202, then GET /v1/jobs/{id})
    app = create_app(settings_)
    with asgi.get_client(app) as client:  # starts the lifespan, kept until shutdown_lifespans
        try:
            assert client.get("/openapi.json").json() == SCHEMA.raw_schema
            yield app
        finally:
            asgi.shutdown_lifespans()  # the app's shutdown: the service closes its stores


@pytest.fixture(scope="module")
def open_app(tmp_path_factory, hermetic) -> Iterator[FastAPI]:
    yield from _live(tmp_path_factory.mktemp("fuzz-open"), key=None)


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory, hermetic) -> Iterator[FastAPI]:
    yield from _live(tmp_path_factory.mktemp("fuzz-keyed"), key=KEY)


# One test item per operation. (Under pytest 9.2 the items' ids lose their "[METHOD /path]" suffix; a failure's
# message names the operation and gives a curl line that reproduces it.)
@SCHEMA.parametrize()
@FUZZ
def test_fuzz_without_a_key_configured(case, open_app):
    case.call_and_validate(app=open_app)


@SCHEMA.parametrize()
@FUZZ
def test_fuzz_with_the_key(case, keyed_app):
    case.call_and_validate(app=keyed_app, headers=BEARER)


@SCHEMA.parametrize()
@FUZZ
def test_fuzz_without_the_key(case, keyed_app):
    response = case.call_and_validate(app=keyed_app)
    if case.path.startswith("/v1"):
        assert response.status_code == 401, (case.method, case.path, response.status_code)


# ---- uploads with real file names ---------------------------------------------------------------------
# Schemathesis names every uploaded part after its form field ("files"), which the app refuses as an
# unsupported type before reading it; here files get names and contents that reach the loaders and the index.

SUFFIXES = [".txt", ".md", ".html", ".pdf", ".TXT", ".htm", ".csv", ""]
NAMES = st.tuples(st.sampled_from(["a", "notes", "é ü", "sub/b", "../c", "C:\\d"]),  # unusable names: test_routes
                  st.sampled_from(SUFFIXES)).map("".join)
CONTENTS = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=600).map(str.encode),
    st.text(max_size=600).map(lambda t: t.encode("utf-16")),
    st.binary(max_size=300).map(lambda b: b"%PDF-1.4\n" + b),
    st.lists(st.sampled_from(["<html>", "<p>", "</p>", "<script>", "# Title", "Word.", "\n", " "]),
             max_size=80).map(lambda parts: "".join(parts).encode()),
    st.lists(st.sampled_from(["The reactor", "was built", "in 1987.", "Mara Vell", "said so.", "\n\n"]),
             min_size=20, max_size=200).map(lambda words: " ".join(words).encode()),  # prose, often a job
)
UPLOAD = SCHEMA["/v1/documents"]["POST"]


@FUZZ
@given(files=st.lists(st.tuples(NAMES, CONTENTS), min_size=1, max_size=2))
def test_fuzz_uploads(open_app, files):
    with asgi.get_client(open_app) as client:
        response = client.post("/v1/documents", files=[("files", (name, content)) for name, content in files])
    UPLOAD.Case(media_type="multipart/form-data", body={"files": [c for _, c in files]}).validate_response(response)
    assert response.status_code in (200, 202, 400, 415, 429), response.text[:300]
