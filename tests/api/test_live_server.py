"""The real server (`rag serve`, real embedding model) over a socket: the official
OpenAI client against it, a concurrency smoke test, and measured latencies.

Timings are printed with a ``MEASURED:`` prefix (read them with ``pytest -s``);
nothing is asserted about them.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from kit import clean_env, free_port

from rag.settings import REPO_ROOT

pytestmark = pytest.mark.slow

GOLD_DEV = REPO_ROOT / "eval" / "data" / "gold_dev.jsonl"
READY_TIMEOUT_S = 120
ASK_Q = "Which US defense secretary met Xu Qiliang in Beijing in 2018?"  # answered, one cited sentence


class Server:
    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = clean_env(RAG_DATA_DIR=str(data_dir))
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.ready_s: float | None = None
        self.first_answer_s: float | None = None

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def wait_ready(self) -> None:
        deadline = self.started + READY_TIMEOUT_S
        with httpx.Client(base_url=self.base, timeout=5) as http:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if http.get("/readyz").status_code == 200:
                        self.ready_s = time.perf_counter() - self.started
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                raise AssertionError(f"/readyz not 200 within {READY_TIMEOUT_S} s:\n{self.log_tail()}")
            r = http.post("/v1/ask", json={"question": ASK_Q}, timeout=60)
            assert r.status_code == 200, r.text
            self.first_answer_s = time.perf_counter() - self.started

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    srv = Server(root / "data", root / "server.log")
    try:
        srv.wait_ready()
        print(f"\nMEASURED: process start -> /readyz 200 on a fresh data dir: {srv.ready_s:.2f} s")
        print(f"MEASURED: process start -> first successful /v1/ask on a fresh data dir: {srv.first_answer_s:.2f} s")
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.base, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def openai_client(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0, timeout=60)
    yield client
    client.close()


def citation_dict(c) -> dict:
    return c if isinstance(c, dict) else c.model_dump()


def assert_quotes_exact(http, citations) -> None:
    texts: dict[str, str] = {}
    for c in map(citation_dict, citations):
        if c["doc_id"] not in texts:
            r = http.get(f"/v1/documents/{quote(c['doc_id'], safe='')}")
            assert r.status_code == 200
            texts[c["doc_id"]] = r.json()["text"]
        assert texts[c["doc_id"]][c["start"]:c["end"]] == c["quote"], c


# ---- (a) the official OpenAI client -------------------------------------------------------


def test_openai_client_gets_a_cited_answer(openai_client, http):
    response = openai_client.chat.completions.create(
        model="rag-cited", messages=[{"role": "user", "content": ASK_Q}])
    assert response.model == "rag-cited" and response.object == "chat.completion"
    choice = response.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content
    assert "[1]" in content
    citations = response.model_extra["citations"]
    assert citations and citations == choice.message.model_extra["citations"]
    assert [c["n"] for c in citations] == list(range(1, len(citations) + 1))
    assert all(f"[{c['n']}]" in content for c in citations)
    assert_quotes_exact(http, citations)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    # the same as the native route
    native = http.post("/v1/ask", json={"question": ASK_Q}).json()
    assert native["answer"] == content and native["citations"] == citations


def test_openai_client_stream_joins_to_the_same_answer(openai_client):
    plain = openai_client.chat.completions.create(
        model="rag-cited", messages=[{"role": "user", "content": ASK_Q}])
    stream = openai_client.chat.completions.create(
        model="rag-cited", messages=[{"role": "user", "content": ASK_Q}], stream=True)
    chunks = list(stream)
    assert len(chunks) >= 3
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["citations"] == plain.model_extra["citations"]
    assert all(c.model == "rag-cited" for c in chunks) and len({c.id for c in chunks}) == 1


def test_openai_client_follow_up(openai_client):
    response = openai_client.chat.completions.create(model="rag-cited", messages=[
        {"role": "user", "content": "Which US defense secretary met Xu Qiliang in Beijing?"},
        {"role": "assistant", "content": "Jim Mattis [1]."},
        {"role": "user", "content": "When did he meet him?"}])
    content = response.choices[0].message.content
    assert "Mattis" in content and "2018" in content


def test_openai_client_sees_errors_as_api_errors(openai_client):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(model="rag-cited", messages=[
            {"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Nobody."}])
    assert caught.value.status_code == 400
    assert caught.value.body["code"] == "invalid_input"  # the client unwraps {"error": ...}


# ---- documents over a real socket ------------------------------------------------------------


def test_upload_with_percent_in_the_name_round_trips(http, server):
    body = b"The Harrowgate lighthouse was first lit in 1871 by keeper Ida Brensk.\n"
    name = "notes%2Fdraft 50%.txt"
    r = http.post("/v1/documents", files=[("files", (name, body, "text/plain"))])
    assert r.status_code == 200, r.text
    [result] = r.json()["results"]
    assert result["status"] == "added" and result["doc_id"] == name
    url = f"/v1/documents/{quote(name, safe='')}"
    got = http.get(url)
    assert got.status_code == 200 and got.json()["doc_id"] == name and "Ida Brensk" in got.json()["text"]
    a = http.post("/v1/ask", json={"question": "Who first lit the Harrowgate lighthouse?"}).json()
    assert a["answerable"] and any(c["doc_id"] == name for c in a["citations"])
    assert http.delete(url).status_code == 200
    assert http.get(url).status_code == 404


def test_sse_over_the_socket(http):
    events = []
    with http.stream("POST", "/v1/ask/stream", json={"question": ASK_Q}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                events.append(line[len("event: "):])
    assert events[0] == "sources" and events[-2:] == ["answer", "done"] and "delta" in events


# ---- (b) concurrency smoke ---------------------------------------------------------------------


def test_fifty_concurrent_asks(http, server):
    questions = [json.loads(line)["question"] for line in GOLD_DEV.read_text().splitlines() if line.strip()][:5]
    jobs = [questions[i % 5] for i in range(50)]

    def ask(question: str):
        started = time.perf_counter()
        r = http.post("/v1/ask", json={"question": question}, timeout=120)
        return question, r.status_code, r.json(), time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(ask, jobs, timeout=300))
    wall = time.perf_counter() - started
    assert [status for _, status, _, _ in results] == [200] * 50, [b for _, s, b, _ in results if s != 200][:3]
    by_question: dict[str, set[str]] = {}
    for question, _, body, _ in results:
        assert body["question"] == question
        by_question.setdefault(question, set()).add(json.dumps([body["answer"], body["citations"]]))
    assert {q: len(v) for q, v in by_question.items()} == {q: 1 for q in questions}
    # and the same as one request alone
    for q in questions:
        alone = http.post("/v1/ask", json={"question": q}).json()
        assert by_question[q] == {json.dumps([alone["answer"], alone["citations"]])}
    latencies = sorted(t for *_, t in results)
    print(f"\nMEASURED: 50 concurrent /v1/ask (16 threads, 5 questions): wall {wall:.2f} s, "
          f"{50 / wall:.1f} req/s, p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms")
    assert server.proc.poll() is None


# ---- (c) measured latency ------------------------------------------------------------------------


def test_metrics_saw_the_traffic(http):
    text = http.get("/metrics").text
    assert 'rag_http_requests_total{method="POST",route="/v1/ask",status="200"}' in text
    assert 'rag_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}' in text
    assert "rag_ask_stage_seconds_count" in text


# ---- last: the server stops on SIGTERM --------------------------------------------------------------


def test_sigterm_stops_the_server_cleanly(server):
    started = time.perf_counter()
    code = server.stop()
    print(f"\nMEASURED: SIGTERM -> exit: {time.perf_counter() - started:.2f} s (exit code {code})")
    assert code in (0, -signal.SIGTERM), server.log_tail()  # uvicorn re-raises the signal after a graceful stop
    log = server.log_tail(2_000_000)
    assert "Application shutdown complete." in log, server.log_tail()
    assert "Traceback" not in log, server.log_tail()
    # the first start on an empty data dir ingested the corpus and said so in the log
    assert "empty index: ingesting" in log and "ingested: added 5" in log, server.log_tail()
