"""504 when the chat server is too slow, 503 when the Chroma server goes away: real servers, the envelope."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from apiutil import assert_envelope, make_settings
from fastapi.testclient import TestClient
from kit import ChromaServer

from api.app import create_app

QUESTION = "Which US defense secretary met Xu Qiliang in Beijing in 2018?"


class _Hanging(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the stdlib's name
        time.sleep(3)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def hanging_llm():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hanging)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_chat_server_slower_than_the_timeout_is_504(tmp_path, hanging_llm):
    settings = make_settings(tmp_path)
    settings.answer.mode = "openai"
    settings.llm.base_url, settings.llm.timeout, settings.llm.max_retries = hanging_llm, 0.5, 0
    settings.llm.fallback = False
    with TestClient(create_app(settings)) as client:
        started = time.perf_counter()
        error = assert_envelope(client.post("/v1/ask", json={"question": QUESTION}), 504, "upstream_timeout")
        assert time.perf_counter() - started < 2.5  # the timeout, not the server, ended it
        assert "timed out" in error["message"]


@pytest.mark.slow
def test_a_chroma_server_that_goes_away_is_503_and_ready_says_so_then_answers_when_back(tmp_path):
    chroma = ChromaServer(tmp_path / "chroma", tmp_path / "chroma.log").start()
    try:
        settings = make_settings(tmp_path / "data")
        settings.chroma.host, settings.chroma.port = "127.0.0.1", chroma.port
        with TestClient(create_app(settings)) as client:
            assert client.post("/v1/ask", json={"question": QUESTION}).status_code == 200
            chroma.stop()
            assert_envelope(client.post("/v1/ask", json={"question": QUESTION}), 503, "store_unavailable")
            assert_envelope(client.get("/readyz"), 503, "store_unavailable")
            assert client.get("/healthz").status_code == 200  # the process itself is fine
            chroma.start()  # the same data on the same port: answers again, the app not restarted
            assert client.get("/readyz").status_code == 200
            assert client.post("/v1/ask", json={"question": QUESTION}).status_code == 200
    finally:
        chroma.stop()
