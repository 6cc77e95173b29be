"""Upload jobs over the real app (hash embedder): a big upload answers 202 with a job that reports progress and
ends done with the document answerable; small uploads stay synchronous; a full queue answers 429 with
Retry-After; a job a previous process left running is failed with the reason; unknown jobs are 404."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from apiutil import assert_envelope, make_settings

from api.jobs import INTERRUPTED

THRESHOLD = 2000


def beacons(n: int, place: str = "Quillport") -> bytes:
    return " ".join(f"The beacon number {i} stands in {place} harbour near pier {i}." for i in range(n)).encode()


def upload(client, name: str, content: bytes):
    return client.post("/v1/documents", files=[("files", (name, content, "text/plain"))])


def wait_for(client, job_id: str, states: tuple[str, ...], timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()["job"]
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not in {states} within {timeout} s: {job}")


def test_big_upload_is_a_job_that_ends_with_the_document_answerable(start_app):
    client = start_app(api={"job_threshold_bytes": THRESHOLD})
    small = upload(client, "small.txt", b"The lighthouse of Brindle Cove was painted green in 1907.")
    assert small.status_code == 200 and small.json()["results"][0]["status"] == "added"

    content = beacons(300)
    response = upload(client, "beacons.txt", content)
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] in ("queued", "running")
    assert [(f["filename"], f["doc_id"], f["size"]) for f in job["files"]] == [("beacons.txt", "beacons.txt",
                                                                                 len(content))]
    done = wait_for(client, job["id"], ("done", "failed"))
    assert done["state"] == "done", done
    (f,) = done["files"]
    assert f["state"] == "added" and f["chunks"] > 1 and f["chunks_embedded"] == f["chunks_total"] == f["chunks"]
    assert done["progress"]["fraction"] == 1.0 and done["finished"] >= done["started"] >= done["created"]

    answer = client.post("/v1/ask", json={"question": "Near which pier does beacon number 217 stand?"}).json()
    assert any(c["doc_id"] == "beacons.txt" and "217" in c["quote"] for c in answer["citations"]), answer

    listed = client.get("/v1/jobs").json()["jobs"]
    assert listed[0]["id"] == job["id"]
    again = upload(client, "beacons.txt", content)  # idempotent: the same file again changes nothing
    assert wait_for(client, again.json()["job"]["id"], ("done",))["files"][0]["state"] == "unchanged"
    assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]][:2] == [again.json()["job"]["id"], job["id"]]


def test_progress_is_reported_while_a_job_runs(start_app, monkeypatch):
    client = start_app(api={"job_threshold_bytes": THRESHOLD}, embed={"batch_size": 8})
    svc = client.app.state.service
    ingestor = svc.background_ingestor
    gate, seen = threading.Event(), threading.Event()

    class HeldEmbedder:  # the real embedder, holding the job at its second batch until the test has looked
        calls = 0

        def get_text_embedding_batch(self, texts, **kw):
            self.calls += 1
            if self.calls == 2:
                seen.set()
                gate.wait(10)
            return real.get_text_embedding_batch(texts, **kw)

    real = ingestor.embedder
    monkeypatch.setattr(ingestor, "embedder", HeldEmbedder())
    job_id = upload(client, "beacons.txt", beacons(200)).json()["job"]["id"]
    assert seen.wait(10)
    running = client.get(f"/v1/jobs/{job_id}").json()["job"]
    gate.set()
    (f,) = running["files"]
    assert running["state"] == "running" and f["state"] == "running"
    assert 0 < f["chunks_embedded"] < f["chunks_total"]
    assert 0 < running["progress"]["fraction"] < 1
    assert running["progress"]["seconds_left"] is not None and running["progress"]["seconds_left"] >= 0
    assert wait_for(client, job_id, ("done", "failed"))["state"] == "done"


def test_full_queue_answers_429_with_retry_after(start_app, monkeypatch):
    client = start_app(api={"job_threshold_bytes": THRESHOLD, "job_queue": 1})
    svc = client.app.state.service
    release = threading.Event()
    add_files = svc.add_files

    def held(*args, **kwargs):
        release.wait(20)
        return add_files(*args, **kwargs)

    monkeypatch.setattr(svc, "add_files", held)
    try:
        first = upload(client, "one.txt", beacons(100, "Ashford")).json()["job"]["id"]
        wait_for(client, first, ("running",))
        second = upload(client, "two.txt", beacons(100, "Brenmoor"))
        assert second.status_code == 202  # waits in the queue's one place
        third = upload(client, "three.txt", beacons(100, "Carrow"))
        body = assert_envelope(third, 429, "queue_full")
        assert int(third.headers["retry-after"]) >= 1
        assert body["details"]["retry_after"] == int(third.headers["retry-after"])
        assert not any(p.is_dir() for p in (Path(client.settings.data_dir) / "jobs").iterdir()
                       if p.name not in (first, second.json()["job"]["id"]))  # the refused upload left nothing
    finally:
        release.set()
    assert wait_for(client, second.json()["job"]["id"], ("done", "failed"))["state"] == "done"
    assert wait_for(client, first, ("done", "failed"))["state"] == "done"


def test_a_job_left_running_by_a_stopped_server_is_failed_with_the_reason(start_app, tmp_path):
    jobs_dir = tmp_path / "data" / "jobs"
    (jobs_dir / "0123abcd").mkdir(parents=True)  # its spool, left behind by the process that died
    record = {"id": "0123abcd", "state": "running", "created": "2026-11-23T01:00:00Z",
              "started": "2026-11-23T01:00:01Z",
              "files": [{"filename": "a.txt", "doc_id": "a.txt", "size": 10, "state": "added", "chunks": 1},
                        {"filename": "b.txt", "doc_id": "b.txt", "size": 10, "state": "running"}]}
    (jobs_dir / "0123abcd.json").write_text(json.dumps(record))
    client = start_app(settings=make_settings(tmp_path / "data"))
    job = client.get("/v1/jobs/0123abcd").json()["job"]
    assert job["state"] == "failed" and job["reason"] == INTERRUPTED and job["finished"]
    assert [(f["doc_id"], f["state"]) for f in job["files"]] == [("a.txt", "added"), ("b.txt", "failed")]
    assert not (jobs_dir / "0123abcd").exists()  # the spool is gone
    assert json.loads((jobs_dir / "0123abcd.json").read_text())["state"] == "failed"  # and the record says so


def test_unknown_job_is_a_404_envelope(client):
    body = assert_envelope(client.get("/v1/jobs/nope"), 404, "not_found")
    assert body["details"]["job_id"] == "nope"
    assert client.get("/v1/jobs").json() == {"jobs": []}
