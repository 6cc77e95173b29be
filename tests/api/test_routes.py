"""Every route of the HTTP API, happy paths and error paths (hash embedder, in-process)."""

from __future__ import annotations

import json
import logging
import re
import traceback
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apiutil import BUNDLED_IDS, KEY, assert_envelope, make_settings, uploads_listing
from kit import build_pdf
from index.service import RagService
from rag.settings import BUNDLED_CORPUS
from rag.types import REFUSAL

MATTIS_Q = "Which US defense secretary met Xu Qiliang in Beijing in 2018?"

REACTOR_V1 = (b"Quillton Power Notes\n\n"
              b"The zorblax reactor in Quillton was commissioned in 1987 by engineer Mara Vell. "
              b"It produces forty megawatts of power for the whole valley.\n")
REACTOR_V2 = (b"Quillton Power Notes\n\n"
              b"The zorblax reactor in Quillton was commissioned in 1987 by engineer Mara Vell. "
              b"In 2009 the reactor was decommissioned and replaced by the Brannock tidal plant.\n")


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer says ``text`` (Helvetica, no compression)."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return build_pdf(objects)


def upload(client, *files: tuple[str, bytes], headers=None):
    return client.post("/v1/documents", files=[("files", (name, content, "application/octet-stream"))
                                                for name, content in files], headers=headers)


def doc_ids(client) -> list[str]:
    return sorted(d["doc_id"] for d in client.get("/v1/documents").json()["documents"])


def assert_quotes_exact(client, answer: dict) -> None:
    texts: dict[str, str] = {}
    for c in answer["citations"]:
        if c["doc_id"] not in texts:
            r = client.get(f"/v1/documents/{c['doc_id']}")
            assert r.status_code == 200
            texts[c["doc_id"]] = r.json()["text"]
        assert c["end"] > c["start"] >= 0
        assert texts[c["doc_id"]][c["start"]:c["end"]] == c["quote"], c


# ---- operations ---------------------------------------------------------------


def test_healthz(shared):
    r = shared.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_counts_match_the_document_list(shared):
    ready = shared.get("/readyz").json()
    documents = shared.get("/v1/documents").json()["documents"]
    assert ready["status"] == "ready"
    assert ready["documents"] == len(documents) == len(BUNDLED_IDS) == 5
    assert ready["chunks"] == sum(d["chunks"] for d in documents) > 5
    assert ready["stores"] == {"vectors": "chroma embedded (rag_chunks)", "documents": "sqlite embedded"}


def test_openapi_lists_every_route(shared):
    r = shared.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    paths = spec["paths"]
    assert {"/v1/ask", "/v1/ask/stream", "/v1/chat/completions", "/v1/documents", "/v1/documents/{doc_id}",
            "/healthz", "/readyz", "/metrics"} <= set(paths)
    assert set(paths["/v1/documents"]) == {"get", "post"}
    assert set(paths["/v1/documents/{doc_id}"]) == {"get", "delete"}
    assert "post" in paths["/v1/ask"] and "post" in paths["/v1/chat/completions"]
    assert shared.get("/docs").status_code == 200


def test_web_ui_is_served(shared):
    r = shared.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert shared.get("/static/index.html").status_code == 200


def test_unknown_route_and_wrong_method_use_the_envelope(shared):
    assert_envelope(shared.get("/v1/nothing"), 404, "not_found")
    assert_envelope(shared.get("/static/no-such-file.js"), 404, "not_found")
    assert_envelope(shared.get("/v1/ask"), 405, "method_not_allowed")
    assert_envelope(shared.put("/v1/documents"), 405, "method_not_allowed")


# ---- ask ------------------------------------------------------------------------


def test_ask_answers_with_exact_citations(shared):
    r = shared.post("/v1/ask", json={"question": MATTIS_Q})
    assert r.status_code == 200
    a = r.json()
    assert set(a) == {"question", "answer", "answerable", "sentences", "citations", "dropped_citations", "mode",
                      "timings_ms", "confidence", "fallback"}
    assert a["answerable"] is True and "Mattis" in a["answer"] and a["mode"] == "extractive"
    assert a["question"] == MATTIS_Q
    assert a["citations"] and [c["n"] for c in a["citations"]] == list(range(1, len(a["citations"]) + 1))
    assert all(s["citations"] for s in a["sentences"])
    assert {n for s in a["sentences"] for n in s["citations"]} == {c["n"] for c in a["citations"]}
    assert all(f"[{n}]" in a["answer"] for n in (c["n"] for c in a["citations"]))
    assert_quotes_exact(shared, a)
    assert set(a["timings_ms"]) == {"retrieve", "generate", "verify", "total"}


def test_ask_question_is_stripped_and_mode_and_top_k_accepted(shared):
    r = shared.post("/v1/ask", json={"question": f"  {MATTIS_Q}\n", "mode": "extractive", "top_k": 1})
    assert r.status_code == 200
    a = r.json()
    assert a["question"] == MATTIS_Q
    assert len({c["chunk_id"] for c in a["citations"]}) <= 1  # one passage retrieved, one passage cited
    assert shared.post("/v1/ask", json={"question": MATTIS_Q, "top_k": 50}).status_code == 200


def test_unanswerable_question_is_a_refusal(shared):
    r = shared.post("/v1/ask", json={"question": "What is the recipe for banana bread with walnuts?"})
    assert r.status_code == 200
    a = r.json()
    assert a["answerable"] is False and a["answer"].startswith(REFUSAL)
    assert a["citations"] == [] and a["sentences"] == []


def test_question_at_the_length_limit_is_accepted(shared):
    question = (MATTIS_Q + " ") * 40
    question = question[:2000]
    assert len(question) == 2000
    assert shared.post("/v1/ask", json={"question": question}).status_code == 200
    assert_envelope(shared.post("/v1/ask", json={"question": question + "x"}), 400, "invalid_input")


@pytest.mark.parametrize("payload, status, code", [
    ({"question": ""}, 400, "invalid_input"),
    ({"question": "   "}, 400, "invalid_input"),
    ({"question": "\n\t \r\n"}, 400, "invalid_input"),
    ({"question": "x" * 1_000_000}, 400, "invalid_input"),
    ({"question": "Who met Xu? " * 100_000}, 400, "invalid_input"),
    ({"question": "ok?", "top_k": 0}, 422, "validation_error"),
    ({"question": "ok?", "top_k": 51}, 422, "validation_error"),
    ({"question": "ok?", "top_k": -1}, 422, "validation_error"),
    ({"question": "ok?", "top_k": "abc"}, 422, "validation_error"),
    ({"question": "ok?", "top_k": 2.5}, 422, "validation_error"),
    ({"question": "ok?", "mode": "poetry"}, 422, "validation_error"),
    ({"question": "ok?", "mode": ""}, 422, "validation_error"),
    ({"question": "ok?", "temperature": 0.2}, 422, "validation_error"),
    ({"question": None}, 422, "validation_error"),
    ({"question": 123}, 422, "validation_error"),
    ({"question": ["a", "b"]}, 422, "validation_error"),
    ({}, 422, "validation_error"),
], ids=["empty", "spaces", "whitespace", "1MB", "1.2MB-words", "top_k-0", "top_k-51", "top_k-neg", "top_k-abc",
        "top_k-float", "mode-unknown", "mode-empty", "extra-field", "null", "int", "list", "missing"])
def test_ask_bad_input_gets_the_envelope(shared, payload, status, code):
    error = assert_envelope(shared.post("/v1/ask", json=payload), status, code)
    if status == 400:
        assert error["details"].get("field") == "question"
    else:
        assert error["details"]["errors"]


@pytest.mark.parametrize("body, content_type", [
    (b"not json", "application/json"),
    (b'{"question": "unterminated', "application/json"),
    (b"not json", None),
    (b"question=hi", "application/x-www-form-urlencoded"),
    (b'["Who met Xu?"]', "application/json"),
    (b'"Who met Xu?"', "application/json"),
    (b"", "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
])
def test_ask_non_json_body_gets_the_validation_envelope(shared, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    assert_envelope(shared.post("/v1/ask", content=body, headers=headers), 422, "validation_error")


def test_internal_error_is_generic_names_its_request_and_logs_the_traceback(start_app, tmp_path, caplog):
    settings = make_settings(tmp_path / "boom")
    service = RagService(settings)

    def explode(*args, **kwargs):
        raise RuntimeError("kaboom: secret internals")

    client = start_app(settings=settings, service=service, raise_server_exceptions=False)
    service.ask = explode
    with caplog.at_level(logging.ERROR, logger="rag.api"):
        r = client.post("/v1/ask", json={"question": MATTIS_Q}, headers={"X-Request-ID": "trace-me-42"})
    assert r.json()["error"]["details"]["request_id"] == "trace-me-42"
    error = assert_envelope(r, 500, "internal_error")  # checks it equals the X-Request-ID header
    assert "kaboom" not in r.text and "RuntimeError" not in r.text  # never the exception's text
    assert "trace-me-42" in error["message"]
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert logged and "kaboom" in "".join(traceback.format_exception(*logged[0].exc_info))
    assert client.get("/healthz").status_code == 200  # the app is still up


def test_every_response_carries_a_request_id_and_errors_name_it(shared):
    ok = shared.get("/healthz")
    made = ok.headers["x-request-id"]
    assert len(made) == 32 and made != shared.get("/healthz").headers["x-request-id"]  # a new one each time
    given = shared.get("/readyz", headers={"X-Request-ID": "abc-123.x:y"})
    assert given.headers["x-request-id"] == "abc-123.x:y"
    for bad in ("has spaces", "x" * 200, "semi;colon", "<script>"):
        assert shared.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"] != bad
    for r in (shared.get("/v1/documents/nope.txt", headers={"X-Request-ID": "r-404"}),
              shared.post("/v1/ask", json={"question": ""}, headers={"X-Request-ID": "r-400"}),
              shared.post("/v1/ask", json={}, headers={"X-Request-ID": "r-422"})):
        assert r.json()["error"]["details"]["request_id"] == r.headers["x-request-id"] == f"r-{r.status_code}"


def test_the_access_log_line_names_the_request(shared, caplog):
    with caplog.at_level(logging.INFO, logger="rag.access"):
        shared.get("/v1/documents/nope.txt", headers={"X-Request-ID": "access-1"})
    (line,) = [r for r in caplog.records if r.name == "rag.access" and getattr(r, "request_id", "") == "access-1"]
    assert line.getMessage().startswith("GET /v1/documents/nope.txt 404 ")


def test_json_log_lines_carry_the_request_id():
    from api.tracing import JsonFormatter, RequestIdFilter, current_request_id

    record = logging.LogRecord("rag.api", logging.WARNING, __file__, 1, "served %s", ("it",), None)
    token = current_request_id.set("req-7")
    try:
        RequestIdFilter().filter(record)
        line = JsonFormatter().format(record)
    finally:
        current_request_id.reset(token)
    entry = json.loads(line)
    assert entry["request_id"] == "req-7" and entry["message"] == "served it" and entry["level"] == "WARNING"
    assert "\n" not in line


# ---- documents: reading --------------------------------------------------------------


def test_document_list_describes_the_bundled_corpus(shared):
    r = shared.get("/v1/documents")
    assert r.status_code == 200
    documents = r.json()["documents"]
    assert sorted(d["doc_id"] for d in documents) == BUNDLED_IDS
    for d in documents:
        assert set(d) == {"doc_id", "title", "date", "url", "chunks", "size", "hash"}
        assert d["chunks"] > 0 and d["size"] > 0 and d["title"]
        assert re.fullmatch(r"[0-9a-f]{64}", d["hash"])


@pytest.mark.parametrize("doc_id", BUNDLED_IDS)
def test_get_document_returns_its_stored_text(shared, doc_id):
    r = shared.get(f"/v1/documents/{doc_id}")
    assert r.status_code == 200
    d = r.json()
    assert d["doc_id"] == doc_id and d["size"] == len(d["text"]) > 0
    listed = {x["doc_id"]: x for x in shared.get("/v1/documents").json()["documents"]}[doc_id]
    assert {k: v for k, v in d.items() if k != "text"} == listed
    # the stored text is the cleaned file: its paragraphs are in the file
    raw = (BUNDLED_CORPUS / doc_id).read_text(encoding="utf-8-sig")
    first = next(line for line in d["text"].splitlines() if len(line) > 40)
    assert first in raw


@pytest.mark.parametrize("doc_id", ["nope.txt", "a/b.txt", "a/b/c/d.txt", "a%2Fb.txt", "001_c2d313378d47ce4e",
                                    "001_C2D313378D47CE4E.TXT", "%20", "uploads/x.txt", "..%2F..%2Fetc%2Fpasswd",
                                    "x" * 2000])
def test_unknown_document_is_404(shared, doc_id):
    error = assert_envelope(shared.get(f"/v1/documents/{doc_id}"), 404, "not_found")
    assert "doc_id" in error["details"]
    assert_envelope(shared.delete(f"/v1/documents/{doc_id}"), 404, "not_found")


def test_document_id_with_slashes_reaches_the_route(shared):
    error = assert_envelope(shared.get("/v1/documents/a/b.txt"), 404, "not_found")
    assert error["details"]["doc_id"] == "a/b.txt"


# ---- documents: upload lifecycle ------------------------------------------------------


def test_upload_update_ask_delete_lifecycle(client):
    data_dir = Path(client.settings.data_dir)
    before = client.get("/readyz").json()

    r = upload(client, ("reactor.txt", REACTOR_V1))
    assert r.status_code == 200, r.text
    [result] = r.json()["results"]
    assert result["filename"] == "reactor.txt" and result["doc_id"] == "reactor.txt"
    assert result["status"] == "added" and result["chunks"] > 0 and result["reason"] is None
    assert uploads_listing(data_dir) == ["reactor.txt"]
    assert (data_dir / "uploads" / "reactor.txt").read_bytes() == REACTOR_V1

    listed = {d["doc_id"]: d for d in client.get("/v1/documents").json()["documents"]}
    assert set(listed) == set(BUNDLED_IDS) | {"reactor.txt"}
    info = listed["reactor.txt"]
    assert info["chunks"] == result["chunks"] > 0 and re.fullmatch(r"[0-9a-f]{64}", info["hash"])
    ready = client.get("/readyz").json()
    assert ready["documents"] == before["documents"] + 1 and ready["chunks"] == before["chunks"] + info["chunks"]

    text = client.get("/v1/documents/reactor.txt").json()["text"]
    assert "commissioned in 1987 by engineer Mara Vell" in text

    a = client.post("/v1/ask", json={"question": "Who commissioned the zorblax reactor in Quillton?"}).json()
    assert a["answerable"] and "Mara Vell" in a["answer"]
    cited = [c for c in a["citations"] if c["doc_id"] == "reactor.txt"]
    assert cited and all(text[c["start"]:c["end"]] == c["quote"] for c in cited)
    assert_quotes_exact(client, a)

    # the same content again: nothing to do
    [again] = upload(client, ("reactor.txt", REACTOR_V1)).json()["results"]
    assert again["status"] == "unchanged" and again["chunks"] == info["chunks"]
    assert uploads_listing(data_dir) == ["reactor.txt"]

    # changed content: the new version replaces the old one
    [changed] = upload(client, ("reactor.txt", REACTOR_V2)).json()["results"]
    assert changed["status"] == "updated" and changed["chunks"] > 0
    new = client.get("/v1/documents/reactor.txt").json()
    assert new["hash"] != info["hash"] and "Brannock tidal plant" in new["text"]
    assert "forty megawatts" not in new["text"]
    assert (data_dir / "uploads" / "reactor.txt").read_bytes() == REACTOR_V2
    assert uploads_listing(data_dir) == ["reactor.txt"]
    a2 = client.post("/v1/ask", json={"question": "Which tidal plant replaced the zorblax reactor?"}).json()
    assert a2["answerable"] and "Brannock" in a2["answer"]
    assert_quotes_exact(client, a2)

    # delete: gone from the index, the listing and the uploads folder
    r = client.delete("/v1/documents/reactor.txt")
    assert r.status_code == 200 and r.json() == {"deleted": "reactor.txt"}
    assert_envelope(client.get("/v1/documents/reactor.txt"), 404, "not_found")
    assert_envelope(client.delete("/v1/documents/reactor.txt"), 404, "not_found")
    assert "reactor.txt" not in doc_ids(client)
    assert uploads_listing(data_dir) == []
    assert client.get("/readyz").json() == before
    gone = client.post("/v1/ask", json={"question": "Who commissioned the zorblax reactor in Quillton?"}).json()
    assert all(c["doc_id"] != "reactor.txt" for c in gone["citations"])
    assert "Mara Vell" not in gone["answer"]


def test_upload_several_formats_at_once(client):
    html = (b"<html><head><title>Harbor report</title></head><body><nav>Home | About</nav>"
            b"<article><h1>Port of Velmora</h1><p>The port of Velmora handled nine million tonnes of cargo "
            b"in 2021, a record for the harbour.</p></article><footer>(c) news</footer></body></html>")
    md = (b"# Glacier survey\n\nThe **Ostrava glacier** retreated by [forty metres](http://x.example) "
          b"between 2015 and 2020, according to the survey team.\n")
    pdf = minimal_pdf("The Tindale bridge over the Ferro river opened to traffic in 1964.")
    r = upload(client, ("port.html", html), ("glacier.md", md), ("bridge.pdf", pdf))
    assert r.status_code == 200, r.text
    results = {x["doc_id"]: x for x in r.json()["results"]}
    assert {k: v["status"] for k, v in results.items()} == {"port.html": "added", "glacier.md": "added",
                                                             "bridge.pdf": "added"}
    assert all(v["chunks"] > 0 for v in results.values())
    port = client.get("/v1/documents/port.html").json()
    assert port["title"] == "Port of Velmora" and "nine million tonnes" in port["text"]
    assert "Home | About" not in port["text"] and "<p>" not in port["text"]
    glacier = client.get("/v1/documents/glacier.md").json()
    assert glacier["title"] == "Glacier survey"
    assert "The Ostrava glacier retreated by forty metres between 2015" in glacier["text"]
    bridge = client.get("/v1/documents/bridge.pdf").json()
    assert "Tindale bridge" in bridge["text"]
    a = client.post("/v1/ask", json={"question": "When did the Tindale bridge open to traffic?"}).json()
    assert a["answerable"] and "1964" in a["answer"]
    assert any(c["doc_id"] == "bridge.pdf" for c in a["citations"])
    assert_quotes_exact(client, a)
    assert uploads_listing(client.settings.data_dir) == ["bridge.pdf", "glacier.md", "port.html"]


@pytest.mark.parametrize("filename, doc_id", [
    ("sub/dir/notes.txt", "notes.txt"),
    ("../../escape.txt", "escape.txt"),
    ("..\\..\\windows.txt", "windows.txt"),
    ("C:\\Users\\me\\report.txt", "report.txt"),
])
def test_upload_names_lose_their_folders(client, tmp_path, filename, doc_id):
    r = upload(client, (filename, REACTOR_V1))
    assert r.status_code == 200, r.text
    [result] = r.json()["results"]
    assert result["doc_id"] == doc_id and "/" not in result["doc_id"] and result["status"] == "added"
    assert uploads_listing(client.settings.data_dir) == [doc_id]
    assert not (Path(client.settings.data_dir).parent / doc_id).exists()
    assert client.get(f"/v1/documents/{doc_id}").status_code == 200


def test_uploading_a_bundled_document_name_is_skipped_and_leaves_the_corpus_alone(client):
    name = "001_c2d313378d47ce4e.txt"
    original = client.get(f"/v1/documents/{name}").json()
    file_before = (BUNDLED_CORPUS / name).read_bytes()
    r = upload(client, (name, b"Completely different text about the zorblax reactor in Quillton.\n"))
    assert r.status_code == 200, r.text
    [result] = r.json()["results"]
    assert result["status"] == "skipped" and result["doc_id"] == name
    assert result["reason"] and "remove or rename" in result["reason"]
    assert client.get(f"/v1/documents/{name}").json() == original
    assert (BUNDLED_CORPUS / name).read_bytes() == file_before
    assert uploads_listing(client.settings.data_dir) == []


def test_deleting_a_bundled_document_keeps_its_file(client):
    name = "003_fa1d9f4716c12055.txt"
    file_before = (BUNDLED_CORPUS / name).read_bytes()
    r = client.delete(f"/v1/documents/{name}")
    assert r.status_code == 200 and r.json() == {"deleted": name}
    assert_envelope(client.get(f"/v1/documents/{name}"), 404, "not_found")
    assert (BUNDLED_CORPUS / name).read_bytes() == file_before
    assert client.get("/readyz").json()["documents"] == 4


# ---- documents: upload errors ------------------------------------------------------


@pytest.mark.parametrize("files, status, code", [
    ([("blob.txt", b"\x00\x01\x02\x03binary\x00data" * 10)], 415, "unsupported_media_type"),
    ([("image.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)], 415, "unsupported_media_type"),
    ([("program.exe", b"MZ\x90\x00 plain enough")], 415, "unsupported_media_type"),
    ([("README", b"A file with no extension at all.")], 415, "unsupported_media_type"),
    ([("notes.docx", b"PK\x03\x04 not really a docx")], 415, "unsupported_media_type"),
    ([("fake.pdf", b"This is plain text pretending to be a PDF document.")], 415, "unsupported_media_type"),
    ([("empty.txt", b"")], 400, "invalid_input"),
    ([("blank.md", b"  \n\n\t \r\n")], 400, "invalid_input"),
    ([("empty.pdf", b"")], 400, "invalid_input"),
    ([(".hidden.txt", b"A hidden file name is not a usable document id.")], 400, "invalid_input"),
    ([("ok.txt", REACTOR_V1), ("bad.bin", b"\x00\x00")], 415, "unsupported_media_type"),
    ([("ok.txt", REACTOR_V1), ("empty.txt", b"")], 400, "invalid_input"),
], ids=["binary-txt", "png", "exe", "no-extension", "docx", "fake-pdf", "empty", "whitespace", "empty-pdf",
        "hidden-name", "batch-with-binary", "batch-with-empty"])
def test_bad_uploads_are_refused_and_leave_nothing(client, files, status, code):
    data_dir = client.settings.data_dir
    before = client.get("/readyz").json()
    error = assert_envelope(upload(client, *files), status, code)
    assert error["details"].get("filename") in {name for name, _ in files}
    assert uploads_listing(data_dir) == []
    assert client.get("/readyz").json() == before
    assert doc_ids(client) == BUNDLED_IDS


def test_oversized_upload_is_413(start_app):
    client = start_app(api={"max_upload_bytes": 100})
    data_dir = client.settings.data_dir
    error = assert_envelope(upload(client, ("big.txt", b"word " * 21)), 413, "too_large")
    assert error["details"] == {"filename": "big.txt", "limit": 100}
    assert uploads_listing(data_dir) == [] and doc_ids(client) == BUNDLED_IDS
    # exactly at the limit is fine
    exact = (b"The kestrel count in Lower Farrow reached ninety birds this spring. " * 2)[:99] + b"."
    assert len(exact) == 100
    r = upload(client, ("exact.txt", exact))
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "added"


def test_too_many_files_is_400(start_app):
    client = start_app(api={"max_upload_files": 1})
    error = assert_envelope(upload(client, ("a.txt", REACTOR_V1), ("b.txt", REACTOR_V2)), 400, "invalid_input")
    assert error["details"] == {"limit": 1}
    assert uploads_listing(client.settings.data_dir) == [] and doc_ids(client) == BUNDLED_IDS
    assert upload(client, ("a.txt", REACTOR_V1)).status_code == 200


@pytest.mark.parametrize("request_kwargs", [
    {},                                                           # no body at all
    {"data": {"files": "just a form field"}},                     # a field, not a file
    {"files": [("other", ("a.txt", b"hello world", "text/plain"))]},  # wrong field name
    {"json": {"files": ["a.txt"]}},
])
def test_upload_without_files_is_422(shared, request_kwargs):
    assert_envelope(shared.post("/v1/documents", **request_kwargs), 422, "validation_error")


def test_pdf_with_a_pdf_header_but_broken_body_is_skipped_and_leaves_nothing(client):
    r = upload(client, ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n"))
    assert r.status_code == 200, r.text
    [result] = r.json()["results"]
    assert result["status"] == "skipped" and result["reason"] and result["doc_id"] == "broken.pdf"
    assert uploads_listing(client.settings.data_dir) == []
    assert "broken.pdf" not in doc_ids(client)


def test_a_broken_new_version_leaves_the_previous_one(client):
    good = minimal_pdf("The Tindale bridge over the Ferro river opened to traffic in 1964.")
    assert upload(client, ("bridge.pdf", good)).json()["results"][0]["status"] == "added"
    before = client.get("/v1/documents/bridge.pdf").json()
    [result] = upload(client, ("bridge.pdf", b"%PDF-1.4\ntruncated")).json()["results"]
    assert result["status"] == "skipped"
    assert client.get("/v1/documents/bridge.pdf").json() == before
    assert uploads_listing(client.settings.data_dir) == ["bridge.pdf"]
    assert (Path(client.settings.data_dir) / "uploads" / "bridge.pdf").read_bytes() == good


def test_skip_reason_names_the_uploaded_file(client):
    [result] = upload(client, ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n")).json()["results"]
    assert ".upload-" not in result["reason"]
    assert "broken.pdf" in result["reason"]


def test_a_refused_batch_ingests_nothing(client):
    data_dir = client.settings.data_dir
    assert_envelope(upload(client, ("good.txt", REACTOR_V1), (".hidden.txt", REACTOR_V2)), 400, "invalid_input")
    assert uploads_listing(data_dir) == []
    assert doc_ids(client) == BUNDLED_IDS


def test_a_file_without_indexable_text_is_not_added(client):
    r = upload(client, ("invisible.txt", "\u200b\u200b\u200b\n\u200b".encode()))
    if r.status_code == 200:
        [result] = r.json()["results"]
        assert result["status"] == "skipped" and result["reason"]
        assert "invisible.txt" not in doc_ids(client)
    else:
        assert_envelope(r, 400)
    assert uploads_listing(client.settings.data_dir) == []


# ---- chat (non-stream) ---------------------------------------------------------------


def test_chat_completion_answers_in_openai_shape(shared):
    r = shared.post("/v1/chat/completions", json={
        "model": "my-model", "messages": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": MATTIS_Q}],
        "temperature": 0.7, "max_tokens": 99, "user": "someone"})  # sampling fields are accepted and ignored
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["object"] == "chat.completion" and c["model"] == "my-model" and c["id"].startswith("chatcmpl-")
    assert isinstance(c["created"], int)
    [choice] = c["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and "Mattis" in choice["message"]["content"]
    assert choice["message"]["citations"] == c["citations"] and c["citations"]
    ask = shared.post("/v1/ask", json={"question": MATTIS_Q}).json()
    assert choice["message"]["content"] == ask["answer"] and c["citations"] == ask["citations"]
    u = c["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] and u["completion_tokens"] > 0


def test_chat_completion_carries_the_confidence_beside_the_citations(shared):
    ask = shared.post("/v1/ask", json={"question": MATTIS_Q}).json()
    c = shared.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": MATTIS_Q}]}).json()
    message = c["choices"][0]["message"]
    assert set(message) == {"role", "content", "citations", "confidence"}
    assert {"citations", "confidence"} <= set(c)
    assert isinstance(ask["confidence"], float) and 0.0 < ask["confidence"] <= 1.0
    assert message["confidence"] == c["confidence"] == ask["confidence"]
    schema = shared.get("/openapi.json").json()["components"]["schemas"]
    assert "confidence" in schema["ChatCompletion"]["properties"]
    assert "confidence" in schema["ChatResponseMessage"]["properties"]


def test_chat_content_parts_are_read_as_text(shared):
    r = shared.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": [{"type": "text", "text": MATTIS_Q},
                                     {"type": "image_url", "image_url": {"url": "http://x.example/a.png"}}]}]})
    assert r.status_code == 200 and "Mattis" in r.json()["choices"][0]["message"]["content"]
    assert r.json()["model"] == "rag-cited"


@pytest.mark.parametrize("payload, status, code", [
    ({"messages": []}, 422, "validation_error"),
    ({}, 422, "validation_error"),
    ({"messages": "hello"}, 422, "validation_error"),
    ({"messages": [{"content": "no role"}]}, 422, "validation_error"),
    ({"messages": [{"role": "user", "content": MATTIS_Q}], "top_k": 0}, 422, "validation_error"),
    ({"messages": [{"role": "user", "content": MATTIS_Q}], "mode": "poetry"}, 422, "validation_error"),
    ({"messages": [{"role": "user", "content": MATTIS_Q}], "stream": "perhaps"}, 422, "validation_error"),
    ({"messages": [{"role": "user", "content": MATTIS_Q}, {"role": "assistant", "content": "Mattis."}]},
     400, "invalid_input"),
    ({"messages": [{"role": "system", "content": "You are helpful."}]}, 400, "invalid_input"),
    ({"messages": [{"role": "user", "content": ""}]}, 400, "invalid_input"),
    ({"messages": [{"role": "user", "content": None}]}, 400, "invalid_input"),
    ({"messages": [{"role": "user", "content": "   "}]}, 400, "invalid_input"),
    ({"messages": [{"role": "user", "content": "x" * 1_000_000}]}, 400, "invalid_input"),
    ({"messages": [{"role": "user", "content": "x" * 1_000_000}], "stream": True}, 400, "invalid_input"),
    ({"messages": [{"role": "user", "content": ""}], "stream": True}, 400, "invalid_input"),
], ids=["no-messages", "missing", "messages-string", "no-role", "top_k-0", "mode", "stream-not-bool",
        "last-assistant", "system-only", "empty", "null-content", "spaces", "1MB", "1MB-stream", "empty-stream"])
def test_chat_bad_input_gets_the_envelope(shared, payload, status, code):
    assert_envelope(shared.post("/v1/chat/completions", json=payload), status, code)


# ---- API key ----------------------------------------------------------------------------

V1_CALLS = [
    ("POST", "/v1/ask", {"json": {"question": MATTIS_Q}}),
    ("POST", "/v1/ask/stream", {"json": {"question": MATTIS_Q}}),
    ("POST", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": MATTIS_Q}]}}),
    ("POST", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": MATTIS_Q}],
                                                "stream": True}}),
    ("GET", "/v1/documents", {}),
    ("POST", "/v1/documents", {"files": [("files", ("keyed.txt", REACTOR_V1, "text/plain"))]}),
    ("GET", "/v1/documents/001_c2d313378d47ce4e.txt", {}),
    ("DELETE", "/v1/documents/001_c2d313378d47ce4e.txt", {}),
    ("GET", "/v1/jobs", {}),
    ("GET", "/v1/jobs/0123abcd", {}),
]
BAD_AUTH = {
    "missing": {},
    "wrong-key": {"Authorization": "Bearer nope"},
    "empty-bearer": {"Authorization": "Bearer "},
    "basic-scheme": {"Authorization": "Basic k"},
    "no-scheme": {"Authorization": "k"},
    "key-prefix": {"Authorization": "Bearer kk"},
    "x-api-key": {"X-API-Key": "k"},
}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, module_env):
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = make_settings(tmp_path_factory.mktemp("keyed-data"), key=KEY)
    with TestClient(create_app(settings)) as client:
        client.settings = settings
        yield client


def test_the_key_list_covers_every_v1_route(keyed):
    paths = keyed.get("/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() if path.startswith("/v1") for method in ops}
    called = {(m, re.sub(r"^/v1/jobs/.+", "/v1/jobs/{job_id}", re.sub(r"^/v1/documents/.+", "/v1/documents/{doc_id}", p)))
              for m, p, _ in V1_CALLS}
    assert routes == called


@pytest.mark.parametrize("headers", list(BAD_AUTH.values()), ids=list(BAD_AUTH))
@pytest.mark.parametrize("method, path, kwargs", V1_CALLS, ids=[f"{m} {p}" for m, p, _ in V1_CALLS])
def test_v1_routes_need_the_key(keyed, method, path, kwargs, headers):
    error = assert_envelope(keyed.request(method, path, headers=headers, **kwargs), 401, "unauthorized")
    assert "Bearer" in error["message"]


def test_nothing_changes_without_the_key(keyed):
    assert_envelope(keyed.delete("/v1/documents/001_c2d313378d47ce4e.txt"), 401)
    assert_envelope(upload(keyed, ("keyed.txt", REACTOR_V1)), 401)
    assert uploads_listing(keyed.settings.data_dir) == []
    ok = {"Authorization": f"Bearer {KEY}"}
    assert doc_ids_with(keyed, ok) == BUNDLED_IDS


def doc_ids_with(client, headers) -> list[str]:
    return sorted(d["doc_id"] for d in client.get("/v1/documents", headers=headers).json()["documents"])


def test_bad_requests_without_the_key_are_401_not_422(keyed):
    assert_envelope(keyed.post("/v1/ask", content=b"junk"), 401, "unauthorized")
    assert_envelope(keyed.post("/v1/ask", json={"question": ""}), 401, "unauthorized")
    assert_envelope(keyed.get("/v1/documents/nope.txt"), 401, "unauthorized")


@pytest.mark.parametrize("auth", [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER {KEY}", f"Bearer {KEY} "])
def test_v1_routes_work_with_the_key(keyed, auth):
    headers = {"Authorization": auth}
    r = keyed.post("/v1/ask", json={"question": MATTIS_Q}, headers=headers)
    assert r.status_code == 200 and "Mattis" in r.json()["answer"]
    assert keyed.get("/v1/documents", headers=headers).status_code == 200
    assert keyed.get("/v1/documents/001_c2d313378d47ce4e.txt", headers=headers).status_code == 200
    r = keyed.post("/v1/chat/completions", headers=headers,
                   json={"messages": [{"role": "user", "content": MATTIS_Q}], "stream": True})
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    r = keyed.post("/v1/ask/stream", headers=headers, json={"question": MATTIS_Q})
    assert r.status_code == 200 and "event: done" in r.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/", "/static/index.html", "/openapi.json",
                                  "/docs"])
def test_operations_and_ui_stay_open_with_a_key(keyed, path):
    assert keyed.get(path).status_code == 200


def test_errors_keep_their_status_with_the_key(keyed):
    ok = {"Authorization": f"Bearer {KEY}"}
    assert_envelope(keyed.get("/v1/documents/nope.txt", headers=ok), 404, "not_found")
    assert_envelope(keyed.post("/v1/ask", json={"question": ""}, headers=ok), 400, "invalid_input")
    assert_envelope(keyed.post("/v1/ask", json={"question": "q", "top_k": 0}, headers=ok), 422, "validation_error")


# ---- metrics -------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_routes_stages_and_the_corpus(client):
    for _ in range(3):
        assert client.post("/v1/ask", json={"question": MATTIS_Q}).status_code == 200
    assert client.post("/v1/ask", json={"question": ""}).status_code == 400
    assert client.post("/v1/ask/stream", json={"question": MATTIS_Q}).status_code == 200
    assert client.post("/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": MATTIS_Q}]}).status_code == 200
    assert client.get("/v1/documents/001_c2d313378d47ce4e.txt").status_code == 200
    assert client.get("/v1/documents/nope.txt").status_code == 404
    assert client.get("/v1/documents").status_code == 200
    ready = client.get("/readyz").json()

    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = samples(r.text)

    def requests(route, method, status):
        return m.get(("rag_http_requests_total", (("method", method), ("route", route), ("status", status))))

    assert requests("/v1/ask", "POST", "200") == 3
    assert requests("/v1/ask", "POST", "400") == 1
    assert requests("/v1/ask/stream", "POST", "200") == 1
    assert requests("/v1/chat/completions", "POST", "200") == 1
    assert requests("/v1/documents/{doc_id:path}", "GET", "200") == 1
    assert requests("/v1/documents/{doc_id:path}", "GET", "404") == 1
    assert requests("/v1/documents", "GET", "200") == 1
    assert requests("/readyz", "GET", "200") == 1
    # 3 asks + 1 stream + 1 chat completion went through the pipeline (the warm-up is not counted)
    for stage in ("retrieve", "generate", "verify", "total"):
        assert m[("rag_ask_stage_seconds_count", (("stage", stage),))] == 5
    assert m[("rag_ask_stage_seconds_sum", (("stage", "total"),))] > 0
    assert m[("rag_documents", ())] == ready["documents"] == 5
    assert m[("rag_chunks", ())] == ready["chunks"]
    assert ("rag_http_request_seconds_count", (("route", "/v1/ask"),)) in m

    # the gauges follow the index
    upload(client, ("reactor.txt", REACTOR_V1))
    m2 = samples(client.get("/metrics").text)
    ready2 = client.get("/readyz").json()
    assert m2[("rag_documents", ())] == ready2["documents"] == 6
    assert m2[("rag_chunks", ())] == ready2["chunks"] > ready["chunks"]
    assert m2[("rag_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))] == 1


# ---- an empty index ----------------------------------------------------------------------


def test_empty_index_is_409_until_something_is_uploaded(start_app, tmp_path):
    empty = tmp_path / "empty-corpus"
    empty.mkdir()
    client = start_app(corpus_dir=empty)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"status": "empty", "documents": 0, "chunks": 0, "stores": {
        "vectors": "chroma embedded (rag_chunks)", "documents": "sqlite embedded"}}
    assert client.get("/v1/documents").json() == {"documents": []}
    assert_envelope(client.post("/v1/ask", json={"question": MATTIS_Q}), 409, "index_empty")
    assert_envelope(client.post("/v1/ask/stream", json={"question": MATTIS_Q}), 409, "index_empty")
    assert_envelope(client.post("/v1/chat/completions",
                                json={"messages": [{"role": "user", "content": MATTIS_Q}]}), 409, "index_empty")
    assert_envelope(client.post("/v1/chat/completions",
                                json={"messages": [{"role": "user", "content": MATTIS_Q}], "stream": True}),
                    409, "index_empty")
    # bad input is still bad input
    assert_envelope(client.post("/v1/ask", json={"question": ""}), 400, "invalid_input")
    m = samples(client.get("/metrics").text)
    assert m[("rag_documents", ())] == 0 and m[("rag_chunks", ())] == 0

    assert upload(client, ("reactor.txt", REACTOR_V1)).json()["results"][0]["status"] == "added"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["documents"] == 1 and ready["chunks"] > 0
    a = client.post("/v1/ask", json={"question": "Who commissioned the zorblax reactor in Quillton?"}).json()
    assert a["answerable"] and {c["doc_id"] for c in a["citations"]} == {"reactor.txt"}
    assert client.delete("/v1/documents/reactor.txt").status_code == 200
    assert client.get("/readyz").json()["status"] == "empty"
    assert_envelope(client.post("/v1/ask", json={"question": MATTIS_Q}), 409, "index_empty")


def test_an_overlong_file_name_is_refused_cleanly(start_app):
    client = start_app(raise_server_exceptions=False)
    r = upload(client, ("a" * 300 + ".txt", REACTOR_V1))
    assert r.status_code < 500, r.text
    uploaded = set(doc_ids(client)) - set(BUNDLED_IDS)
    assert uploaded <= set(uploads_listing(client.settings.data_dir))  # whatever is indexed has its file


def test_internal_errors_are_counted_in_metrics(start_app, tmp_path):
    settings = make_settings(tmp_path / "boom")
    service = RagService(settings)
    client = start_app(settings=settings, service=service, raise_server_exceptions=False)

    def explode(*args, **kwargs):
        raise RuntimeError("kaboom")

    service.ask = explode
    assert client.post("/v1/ask", json={"question": MATTIS_Q}).status_code == 500
    m = samples(client.get("/metrics").text)
    assert m.get(("rag_http_requests_total", (("method", "POST"), ("route", "/v1/ask"), ("status", "500")))) == 1
