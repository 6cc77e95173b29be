"""Two ``rag serve`` replicas on one PostgreSQL and one ``chroma run`` server (slow: real servers, the real
model): what one replica writes, the other serves; concurrent writers of one file leave one version."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import chromadb
import httpx
import psycopg
import pytest

from kit import ChildProcess, ChromaServer, clean_env, free_port, rag_command

pytestmark = pytest.mark.slow

READY_S = 180


class Replica:
    def __init__(self, name: str, tmp: Path, database_url: str, chroma_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = clean_env(RAG_DATA_DIR=str(tmp / name), RAG_DATABASE_URL=database_url, RAG_CHROMA_HOST="127.0.0.1",
                        RAG_CHROMA_PORT=str(chroma_port), RAG_API_JOB_THRESHOLD_BYTES="20000")
        self.child = ChildProcess(rag_command("serve", "--host", "127.0.0.1", "--port", str(self.port)), env,
                                  tmp / f"{name}.log")
        self.child.wait_for_url(f"{self.url}/readyz", READY_S)
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self.database_url = database_url

    def upload(self, name: str, content: bytes) -> httpx.Response:
        return self.http.post("/v1/documents", files=[("files", (name, content, "text/plain"))])

    def ask(self, question: str) -> dict:
        r = self.http.post("/v1/ask", json={"question": question})
        assert r.status_code == 200, r.text
        return r.json()

    def stop(self) -> None:
        self.http.close()
        self.child.stop()


@pytest.fixture
def replicas(database_url, tmp_path):
    chroma = ChromaServer(tmp_path / "chroma", tmp_path / "chroma.log").start()
    started: list[Replica] = []
    try:
        started.append(Replica("a", tmp_path, database_url, chroma.port))  # ingests the bundled corpus
        started.append(Replica("b", tmp_path, database_url, chroma.port))  # finds it there
        yield started[0], started[1], chroma
    finally:
        for r in started:
            r.stop()
        chroma.stop()


def note(code: str, place: str, days: int = 0) -> bytes:
    log = "".join(f"On day {d} of the survey the team measured the marker {code} near {place} again.\n"
                  for d in range(days))
    return (f"Field note {code}\n\nThe survey marker {code} was set in the village of {place} by the river. "
            f"Surveyors from the coastal office checked the marker {code} twice during the spring.\n{log}").encode()


def cites(answer: dict, doc_id: str) -> bool:
    return answer["answerable"] and any(c["doc_id"] == doc_id for c in answer["citations"])


def test_what_one_replica_writes_the_other_serves(replicas):
    a, b, _ = replicas
    assert a.http.get("/readyz").json()["documents"] == b.http.get("/readyz").json()["documents"] == 5
    assert b.http.get("/readyz").json()["stores"]["documents"].startswith("postgresql postgresql://")

    r = a.upload("marker-q7.txt", note("Q7ZK", "Larnwick"))
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "added", r.text
    uploaded = time.monotonic()
    while True:  # answerable through B within 2 s, citing the text to the character
        answer = b.ask("Where was the survey marker Q7ZK set?")
        if cites(answer, "marker-q7.txt") or time.monotonic() - uploaded > 2:
            break
        time.sleep(0.1)
    assert cites(answer, "marker-q7.txt") and "Larnwick" in answer["answer"]
    text = b.http.get("/v1/documents/marker-q7.txt").json()["text"]
    for c in answer["citations"]:
        if c["doc_id"] == "marker-q7.txt":
            assert text[c["start"]:c["end"]] == c["quote"]
    assert not (Path(a.child.log_path).parent / "a" / "uploads" / "marker-q7.txt").exists()  # the database has it

    assert b.http.delete("/v1/documents/marker-q7.txt").status_code == 200
    assert a.http.get("/v1/documents/marker-q7.txt").status_code == 404
    assert "marker-q7.txt" not in [d["doc_id"] for d in a.http.get("/v1/documents").json()["documents"]]
    assert not cites(a.ask("Where was the survey marker Q7ZK set?"), "marker-q7.txt")


def test_one_file_uploaded_through_both_at_once_ends_as_one_version(replicas):
    a, b, chroma = replicas
    database_url = a.database_url
    versions = {a: note("W4XY", "Ostermoor", days=60), b: note("W4XY", "Fennick Cross", days=60)}
    results: dict = {}
    barrier = threading.Barrier(2)

    def send(replica: Replica) -> None:
        barrier.wait()
        results[replica] = replica.upload("marker-w4.txt", versions[replica])

    threads = [threading.Thread(target=send, args=(r,)) for r in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results.values()), [r.text for r in results.values()]
    stored = a.http.get("/v1/documents/marker-w4.txt").json()
    assert [p for p in ("Ostermoor", "Fennick Cross") if p in stored["text"]] in (["Ostermoor"], ["Fennick Cross"])
    assert b.http.get("/v1/documents/marker-w4.txt").json()["text"] == stored["text"]
    # one version: the chunks listed are the chunks stored, each with exactly one vector in Chroma
    with psycopg.connect(database_url) as con:
        rows = [r[0] for r in con.execute("SELECT chunk_id FROM chunks WHERE doc_id = 'marker-w4.txt'")]
    collection = chromadb.HttpClient(host="127.0.0.1", port=chroma.port).get_collection("rag_chunks")
    vectors = [i for i in collection.get(include=[])["ids"] if i.startswith("marker-w4.txt:")]
    assert sorted(vectors) == sorted(rows) and len(rows) == stored["chunks"] > 1


def test_a_replica_killed_mid_upload_leaves_nothing_half_visible_and_the_retry_through_the_other_completes(
        replicas):
    a, b, chroma = replicas
    content = "\n".join(f"Ledger entry {i}: the cargo ship Marisol-{i} unloaded {i * 7 % 997} crates of copper at "
                        f"dock {i % 41} in Vellmar." for i in range(1500)).encode()  # ~150 kB: a job, a while
    job = a.upload("ledger.txt", content)
    assert job.status_code == 202, job.text
    job_url = f"/v1/jobs/{job.json()['job']['id']}"
    deadline = time.monotonic() + 120
    while a.http.get(job_url).json()["job"]["files"][0]["chunks_embedded"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    a.child.stop(kill=True)  # SIGKILL mid-embedding: no shutdown code runs

    assert b.http.get("/v1/documents/ledger.txt").status_code == 404  # nothing of it is visible
    assert "ledger.txt" not in [d["doc_id"] for d in b.http.get("/v1/documents").json()["documents"]]
    retry = b.upload("ledger.txt", content)
    assert retry.status_code == 202, retry.text
    retry_url = f"/v1/jobs/{retry.json()['job']['id']}"
    deadline = time.monotonic() + 600
    while (state := b.http.get(retry_url).json()["job"])["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert state["state"] == "done", state
    answer = b.ask("How many crates did the Marisol-1234 unload?")
    assert any(c["doc_id"] == "ledger.txt" and "Marisol-1234" in c["quote"] for c in answer["citations"]), answer


def test_either_server_restarting_under_running_replicas_is_503_then_answers_again(replicas, postgres_server):
    a, b, chroma = replicas
    question = {"question": "Who met Xu Qiliang in Beijing in 2018?"}

    def all_answer() -> bool:
        return all(r.http.get("/readyz").status_code == 200 and r.http.post("/v1/ask", json=question).status_code == 200
                   for r in (a, b))

    for stop, start in ((lambda: postgres_server.stop(mode="immediate"), postgres_server.resume),
                        (chroma.stop, chroma.start)):
        stop()
        try:
            for r in (a, b):
                down = r.http.post("/v1/ask", json=question)
                assert down.status_code == 503 and down.json()["error"]["code"] == "store_unavailable", down.text
                assert r.http.get("/readyz").status_code == 503 and r.http.get("/healthz").status_code == 200
        finally:
            start()
        deadline = time.monotonic() + 30  # the same replicas, not restarted
        while not all_answer():
            assert time.monotonic() < deadline
            time.sleep(0.3)
