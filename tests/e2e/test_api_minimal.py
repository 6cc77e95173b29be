"""The HTTP edge over the core: /v1/ask, health, and the error envelope."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.settings import Settings


@pytest.fixture()
def client(tmp_path):
    settings = Settings(data_dir=tmp_path)
    settings.embed.provider = "hash"
    with TestClient(create_app(settings)) as c:  # start-up ingests the bundled corpus
        yield c


def test_start_up_ingests_and_reports_ready(client):
    ready = client.get("/readyz").json()
    assert ready["documents"] == 5 and ready["chunks"] > 5
    assert client.get("/healthz").json() == {"status": "ok"}


def test_ask_returns_verified_answer(client):
    r = client.post("/v1/ask", json={"question": "Which US defense secretary met Xu Qiliang in Beijing in 2018?"})
    assert r.status_code == 200
    body = r.json()
    assert body["answerable"] and "Mattis" in body["answer"]
    assert all(c["doc_id"].endswith(".txt") and c["end"] > c["start"] for c in body["citations"])


@pytest.mark.parametrize("payload, status, code", [
    ({"question": ""}, 400, "invalid_input"),
    ({"question": "x" * 1_000_000}, 400, "invalid_input"),
    ({"question": "ok?", "top_k": 0}, 422, "validation_error"),
    ({"question": "ok?", "top_k": 51}, 422, "validation_error"),
    ({"question": "ok?", "mode": "poetry"}, 422, "validation_error"),
    ({}, 422, "validation_error"),
])
def test_bad_input_gets_the_envelope(client, payload, status, code):
    r = client.post("/v1/ask", json=payload)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_unknown_route_uses_the_envelope(client):
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
