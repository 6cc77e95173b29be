"""Regressions for what fuzzing the API turned up (tests/api/test_fuzz_schema.py, and probes beside it)."""

from __future__ import annotations

import pytest

from apiutil import assert_envelope

JSON = {"content-type": "application/json"}
#: A JSON escape for a lone surrogate: valid JSON, but no text, and no UTF-8 response can carry it back.
LONE = b"\\ud800"
USER = b'[{"role": "user", "content": "Who met Xu Qiliang in Beijing in 2018?"}]'


@pytest.mark.parametrize("path, body", [
    ("/v1/ask", b'{"question": "Who met Xu ' + LONE + b'?"}'),
    ("/v1/ask/stream", b'{"question": "Who met Xu ' + LONE + b'?"}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "' + LONE + b' Xu"}]}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "' + LONE + b' Xu"}], "stream": true}'),
], ids=["ask", "ask-stream", "chat", "chat-stream"])
def test_a_question_with_a_lone_surrogate_is_bad_input(shared, path, body):
    """Was a 500 (/v1/ask: the echoed question could not be encoded) or a stream cut after `sources`."""
    error = assert_envelope(shared.post(path, content=body, headers=JSON), 400, "invalid_input")
    assert error["details"] == {"field": "question"}


@pytest.mark.parametrize("stream", [b"false", b"true"])
def test_a_chat_model_name_with_a_lone_surrogate_is_refused(shared, stream):
    """The model name is echoed in the reply: was a 500, or an empty stream."""
    body = b'{"model": "' + LONE + b'", "stream": ' + stream + b', "messages": ' + USER + b"}"
    error = assert_envelope(shared.post("/v1/chat/completions", content=body, headers=JSON), 422, "validation_error")
    assert error["details"]["errors"][0]["loc"] == ["body", "model"]


@pytest.mark.parametrize("part", [{"type": "text", "text": 5}, {"type": "text", "text": ["a"]}, {"text": "no type"}])
def test_a_malformed_content_part_is_a_validation_error(shared, part):
    """A text part whose text was not a string was a 500 (joining the parts)."""
    r = shared.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [part]}]})
    assert_envelope(r, 422, "validation_error")


def test_text_parts_are_read_and_other_parts_ignored(shared):
    parts = [{"type": "text"}, {"type": "text", "text": "Who met Xu Qiliang in Beijing in 2018?"},
             {"type": "image_url", "image_url": {"url": "http://x.example/a.png"}}, {"type": "input_audio"}]
    r = shared.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": parts}]})
    assert r.status_code == 200 and "Mattis" in r.json()["choices"][0]["message"]["content"]


def test_the_schema_documents_every_error_with_the_envelope(shared):
    spec = shared.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's default 422 body: never sent
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            errors = {status: r for status, r in operation["responses"].items() if int(status) >= 400}
            assert all(r["content"] == {"application/json": {"schema": envelope}} for r in errors.values()), path
            assert ("401" in errors) == path.startswith("/v1"), (method, path)
            assert ("422" in errors) == bool(operation.get("parameters") or operation.get("requestBody")), path
    for path in ("/v1/ask/stream", "/v1/chat/completions"):
        assert "text/event-stream" in spec["paths"][path]["post"]["responses"]["200"]["content"]


@pytest.mark.parametrize("name", [b"a\x00b.txt", b"tab\tname.txt", b"bell\x07.md"])
def test_an_upload_name_with_control_characters_is_bad_input(client, name):
    """A NUL byte in a multipart file name reached os.replace ("embedded null byte") as a 500. The body is
    written by hand: httpx would percent-encode the name."""
    before = client.get("/v1/documents").json()["documents"]
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"" + name + b"\"\r\n"
            b"Content-Type: text/plain\r\n\r\nSome text to ingest here.\r\n--XyZ--\r\n")
    response = client.post("/v1/documents", content=body,
                           headers={"content-type": "multipart/form-data; boundary=XyZ"})
    error = assert_envelope(response, 400, "invalid_input")
    assert "control or invalid characters" in error["message"]
    assert client.get("/v1/documents").json()["documents"] == before
