"""Soak: a long run of mixed traffic against one `rag serve` on 127.0.0.1.

Eight clients (threads) loop for ``seconds`` (600 by default) over a weighted
mix of the API: asks, SSE streams read to their end, chat completions plain
and streamed (through the official ``openai`` client), document lists, uploads
of small generated notes that each state one made-up fact ("The soak beacon
K3X0042 stands in Quillport."), and deletes of some of those notes. A ledger
holds every note uploaded and not deleted. A few uploads are large: over the
job threshold (lowered for the soak), they are answered 202 with an upload job,
polled at its ``Location`` until done or failed, between the client's next
requests (a client that stopped to wait would take its load off the server).

Before the clock starts, every client runs every operation once, all at the
same time (a large upload among them), so that what concurrency costs in memory
is taken before the start figures. Then the run: ``seconds`` of traffic, the
first 10% (at most 30 s) a further warm-up.

An error is any 5xx, connection failure, unexpected 4xx, malformed body, or
stream that ends without its last event; a 429 is a back-off (the client waits
``Retry-After``) and is counted apart. Reported: requests and errors per
operation, /v1/ask p50/p95 over a window at the start (after the warm-up) and
one at the end, the server's RSS (its children included) at those two points,
and at the end whether every ledger note is listed and answers its fact with a
citation of itself; plus the server's own warnings and errors from its log
(kept, with the data directory, in the temporary folder named in the JSON).
"""

from __future__ import annotations

import json
import random
import re
import statistics
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai

from bench.measure import Server, pct, serving
from bench.questions import varied_questions
from bench.synthetic import corpus_sentences

CLIENTS = 8
MIX = {"ask": 30, "stream": 12, "chat": 10, "chat_stream": 10, "list": 10, "upload": 16, "delete": 8}
FACT_SHARE = 0.2  # asks that question a live ledger note instead of the corpus
LARGE_SHARE = 0.04  # uploads that are large: over the job threshold, so the server answers 202 (a job)
LARGE_BYTES = 48_000
JOB_THRESHOLD_BYTES = 32_000  # RAG_API_JOB_THRESHOLD_BYTES of the server under test (its default: 1 MB)
WINDOW_S, WARMUP_S = 60.0, 30.0  # at most; a short run uses 20% and 10% of its length
LIVE_NOTES = 150  # uploads beyond this many live notes become deletes (the corpus would grow 250× otherwise)
ANSWER_SAMPLE = 50  # ledger notes asked at the end (all of them when fewer)
JOB_TIMEOUT_S = 300.0
JOB_POLL_S = 0.25
# RSS is sampled this often: large buffers come from and go back to the system (api/memory.py), so one sample
# can be ±300 MB off with an embedding batch in flight; a window's median needs many samples
RSS_EVERY_S = 1.0
MAX_BACKOFF_S = 5.0
SAMPLES = 20  # error and log messages kept
PLACES = ("Quillport", "Brackenmere", "Ostravel", "Fenwold", "Marrowick", "Kelderhaven", "Vintmoor",
          "Ashcombe", "Pellinore", "Tarnhollow", "Wrenfield", "Skellbridge")


class Failure(Exception):
    """A response the soak counts as an error."""


class Backoff(Exception):
    """A 429: wait ``seconds`` and go on (not an error)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"429, retry after {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Note:
    """An uploaded note, by the code its one fact names ("The soak beacon K3X0042 stands in …")."""

    code: str

    @property
    def doc_id(self) -> str:
        return f"soak-{self.code.lower()}.txt"

    @property
    def question(self) -> str:
        """By its code alone: an exact keyword match, answerable however many look-alike notes there are."""
        return f"Where is {self.code}?"

    @property
    def worded(self) -> str:
        """In the words of the fact, which every note shares: the code must outweigh them."""
        return f"Where does the soak beacon {self.code} stand?"


class Ledger:
    """The notes uploaded and not deleted, and those deleted (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, Note] = {}
        self.deleted: set[str] = set()

    def add(self, note: Note) -> None:
        with self._lock:
            self._live[note.doc_id] = note

    def pick(self, rng: random.Random) -> Note | None:
        with self._lock:
            return self._live[rng.choice(list(self._live))] if self._live else None

    def discard(self, note: Note) -> bool:
        """No longer live (the caller deletes it); False when it was not."""
        with self._lock:
            return self._live.pop(note.doc_id, None) is not None

    def take(self, rng: random.Random) -> Note | None:
        """A random live note, no longer live (the caller deletes it)."""
        with self._lock:
            return self._live.pop(rng.choice(list(self._live))) if self._live else None

    def deleted_ok(self, note: Note) -> None:
        """A note taken from the ledger is deleted: it must not be listed at the end."""
        with self._lock:
            self.deleted.add(note.doc_id)

    def __contains__(self, doc_id: str) -> bool:
        with self._lock:
            return doc_id in self._live

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def notes(self) -> list[Note]:
        with self._lock:
            return list(self._live.values())


class Tally:
    """What every client did: requests, latencies, errors, back-offs, jobs (thread-safe).

    Latencies are kept with when their request started, in seconds from ``t0`` (the start of the run)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.t0 = time.perf_counter()
        self.latency: dict[str, list[tuple[float, float]]] = defaultdict(list)  # op → (started at s, ms)
        self.errors: Counter[str] = Counter()
        self.backoffs: Counter[str] = Counter()
        self.samples: list[str] = []
        self.counts: Counter[str] = Counter()  # uploads, jobs and facts asked during the run
        self.job_seconds: list[float] = []

    def ok(self, op: str, started: float) -> None:
        ms = (time.perf_counter() - started) * 1000
        with self._lock:
            self.latency[op].append((started - self.t0, ms))

    def error(self, op: str, message: str) -> None:
        with self._lock:
            self.errors[op] += 1
            if len(self.samples) < SAMPLES:
                self.samples.append(message[:400])

    def backoff(self, op: str) -> None:
        with self._lock:
            self.backoffs[op] += 1

    def requests(self, op: str | None = None) -> int:
        """Requests sent (of ``op``, or all): answered, failed or backed off."""
        ops = [op] if op else list(MIX)
        return sum(len(self.latency[o]) + self.errors[o] + self.backoffs[o] for o in ops)

    def count(self, what: str, seconds: float | None = None) -> None:
        with self._lock:
            self.counts[what] += 1
            if seconds is not None:
                self.job_seconds.append(seconds)


def _expect(r: httpx.Response, status: int) -> Any:
    """The JSON body of a response with ``status``; a 429 is a back-off, anything else a failure."""
    if r.status_code == 429:
        raise Backoff(_retry_after(r.headers.get("retry-after")))
    if r.status_code != status:
        r.read()
        raise Failure(f"{r.status_code} {r.text[:300]}")
    try:
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else None
    except ValueError as exc:
        raise Failure(f"malformed JSON body: {exc}") from exc


def _retry_after(value: str | None) -> float:
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(value or 1)))
    except ValueError:
        return 1.0


def _cites(answer: dict, doc_id: str) -> bool:
    return any(c["doc_id"] == doc_id for c in answer.get("citations") or [])


def note_text(code: str, place: str, pool: list[str], rng: random.Random, size: int = 0) -> str:
    """A note of a few corpus sentences around its fact; padded with more to about ``size`` characters."""
    picked = rng.sample(pool, 4)
    picked.insert(rng.randrange(len(picked) + 1), f"The soak beacon {code} stands in {place}.")
    length = sum(len(s) + 1 for s in picked)
    while length < size:
        picked.append(rng.choice(pool))
        length += len(picked[-1]) + 1
    paragraphs = [" ".join(picked[i:i + 4]) for i in range(0, len(picked), 4)]
    return f"Soak note {code}\n\n" + "\n\n".join(paragraphs) + "\n"


@dataclass
class PendingJob:
    """An upload answered 202, followed until its job is over."""

    note: Note
    location: str
    started: float
    polled: float = 0.0


class Client:
    """One soak client: its own connections, random stream and upload counter."""

    def __init__(self, k: int, url: str, questions: list[str], pool: list[str], ledger: Ledger, tally: Tally) -> None:
        self.k, self.questions, self.pool, self.ledger, self.tally = k, questions, pool, ledger, tally
        self.http = httpx.Client(base_url=url, timeout=60)
        self.openai = openai.OpenAI(base_url=f"{url}/v1", api_key="soak", max_retries=0, timeout=60)
        self.rng = random.Random(k)
        self.sent = self.uploads = 0
        self.last: Note | None = None  # the last note this client uploaded, if that upload succeeded
        # during the run, a large upload's job is followed between this client's requests instead of waited
        # for: a client blocked on a job would take its load off the server, and the latency windows would
        # measure how many clients happen to be waiting rather than the server
        self.follow_jobs = False
        self.jobs: list[PendingJob] = []

    def warm_up(self) -> None:
        """Every operation once, a large upload among them (all clients at once: the memory that concurrency
        takes is taken before the clock starts); the notes it uploads are deleted again."""
        for op in ("ask", "stream", "chat", "chat_stream", "list"):
            self.step(op)
        mine = []
        for large in (False, True):
            self.step("upload", large)
            mine.append(self.last)
        for note in mine:
            if note and self.ledger.discard(note):
                self.step("delete", note)

    def run(self, deadline: float) -> None:
        ops, weights = list(MIX), list(MIX.values())
        self.follow_jobs = True
        try:
            while time.perf_counter() < deadline:
                self.check_jobs()
                op = self.rng.choices(ops, weights)[0]
                if op == "upload" and len(self.ledger) >= LIVE_NOTES:
                    op = "delete"  # steady state: the index stays near its size, so RSS growth means a leak
                note = self.ledger.take(self.rng) if op == "delete" else None  # taken: no other client deletes it
                if note:
                    self.step("delete", note)
                else:
                    self.step("upload" if op == "delete" else op)  # nothing of ours to delete yet: add one
            while self.jobs:  # the clock has run out: the jobs still running are waited for
                time.sleep(JOB_POLL_S)
                self.check_jobs()
        finally:
            self.http.close()
            self.openai.close()

    def step(self, op: str, *args: Any) -> None:
        """One request (or an upload and its job), timed; its outcome goes to the tally."""
        self.sent += 1
        rid = f"soak-{self.k}-{self.sent}"
        started = time.perf_counter()
        try:
            getattr(self, f"_{op}")({"X-Request-ID": rid}, *args)
        except Backoff as exc:
            self.tally.backoff(op)
            time.sleep(exc.seconds)
        except openai.APIStatusError as exc:
            if exc.status_code == 429:
                self.tally.backoff(op)
                time.sleep(_retry_after(exc.response.headers.get("retry-after")))
            else:
                self.tally.error(op, f"{rid} {op}: {exc.status_code} {exc.message}")
        except Exception as exc:  # a failure, a dropped connection, a malformed body: all are errors here
            self.tally.error(op, f"{rid} {op}: {type(exc).__name__}: {exc}")
        else:
            self.tally.ok(op, started)

    def _question(self) -> str:
        return self.rng.choice(self.questions)

    def _ask(self, headers: dict[str, str]) -> None:
        note = self.ledger.pick(self.rng) if self.rng.random() < FACT_SHARE else None
        body = _expect(self.http.post("/v1/ask", json={"question": note.question if note else self._question()},
                                      headers=headers), 200)
        if not isinstance(body, dict) or "answer" not in body:
            raise Failure(f"no answer in {str(body)[:200]}")
        if note and note.doc_id in self.ledger:  # live before the ask and after: it must be found
            self.tally.count("facts_asked")
            if _cites(body, note.doc_id):
                self.tally.count("facts_cited")

    def _stream(self, headers: dict[str, str]) -> None:
        events: list[tuple[str, str]] = []
        with self.http.stream("POST", "/v1/ask/stream", json={"question": self._question()}, headers=headers) as r:
            _expect(r, 200)
            for line in r.iter_lines():
                if line.startswith("event: "):
                    events.append((line[7:], ""))
                elif line.startswith("data: ") and events:
                    events[-1] = (events[-1][0], events[-1][1] + line[6:])
        names = [name for name, _ in events]
        if "error" in names:
            raise Failure(f"error event: {dict(events)['error'][:300]}")
        if names[-1:] != ["done"] or "answer" not in names:
            raise Failure(f"stream ended after {names[-3:]}")

    def _messages(self) -> list[dict[str, str]]:
        if self.rng.random() < 0.3:  # a follow-up after an earlier turn
            return [{"role": "user", "content": self._question()}, {"role": "assistant", "content": "Noted [1]."},
                    {"role": "user", "content": self._question()}]
        return [{"role": "user", "content": self._question()}]

    def _chat(self, headers: dict[str, str]) -> None:
        reply = self.openai.chat.completions.create(model="rag-cited", messages=self._messages(),
                                                    extra_headers=headers)
        if not reply.choices or not reply.choices[0].message.content or "citations" not in (reply.model_extra or {}):
            raise Failure(f"incomplete chat reply {reply.model_dump_json()[:200]}")

    def _chat_stream(self, headers: dict[str, str]) -> None:
        finish = None
        with self.openai.chat.completions.create(model="rag-cited", messages=self._messages(), stream=True,
                                                 extra_headers=headers) as stream:
            for chunk in stream:  # an error frame raises openai.APIError
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
        if finish != "stop":
            raise Failure(f"chat stream ended with finish_reason {finish!r}")

    def _list(self, headers: dict[str, str]) -> None:
        if not _expect(self.http.get("/v1/documents", headers=headers), 200)["documents"]:
            raise Failure("no documents listed")

    def _upload(self, headers: dict[str, str], large: bool | None = None) -> None:
        self.uploads += 1
        self.last, note = None, Note(f"K{self.k}X{self.uploads:04d}")
        large = self.rng.random() < LARGE_SHARE if large is None else large
        text = note_text(note.code, self.rng.choice(PLACES), self.pool, self.rng, LARGE_BYTES if large else 0)
        r = self.http.post("/v1/documents", files=[("files", (note.doc_id, text.encode(), "text/plain"))],
                           headers=headers)
        self.tally.count("uploads_large" if large else "uploads_small")
        if r.status_code != 202:
            self._uploaded(note, _expect(r, 200)["results"][0])
            return
        body = _expect(r, 202)["job"]
        self.tally.count("jobs")
        job = PendingJob(note, r.headers.get("location") or f"/v1/jobs/{body['id']}", time.perf_counter())
        if self.follow_jobs:
            self.jobs.append(job)
            return
        while not self._poll(job, headers):
            time.sleep(JOB_POLL_S)

    def _uploaded(self, note: Note, result: dict) -> None:
        """An upload's file entry (a job's file has a state): the note joins the ledger when it was added."""
        outcome = result.get("status") or result.get("state")
        if outcome != "added":
            raise Failure(f"{note.doc_id}: {outcome} ({result.get('reason')})")
        if result.get("doc_id") != note.doc_id:
            raise Failure(f"uploaded {note.doc_id}, got doc_id {result.get('doc_id')!r}")
        self.ledger.add(note)
        self.last = note

    def _poll(self, pending: PendingJob, headers: dict[str, str]) -> bool:
        """One look at an upload job; True once it is over (done, failed, or past JOB_TIMEOUT_S)."""
        waited = time.perf_counter() - pending.started
        job = _expect(self.http.get(pending.location, headers=headers), 200)["job"]
        if job["state"] not in ("done", "failed"):
            if waited > JOB_TIMEOUT_S:
                raise Failure(f"job {job['id']} still {job['state']} after {JOB_TIMEOUT_S:.0f} s")
            return False
        self.tally.count(f"jobs_{job['state']}", waited)
        if job["state"] == "failed":
            raise Failure(f"job {job['id']} failed: {job.get('reason')}; files {job['files']}")
        self._uploaded(pending.note, job["files"][0])
        return True

    def check_jobs(self) -> None:
        """Look at each followed job at most every JOB_POLL_S; one that is over leaves the list (an error,
        a failed or timed-out job, goes to the tally under "upload")."""
        now = time.perf_counter()
        for job in [j for j in self.jobs if now - j.polled >= JOB_POLL_S]:
            job.polled = now
            try:
                over = self._poll(job, {"X-Request-ID": f"soak-{self.k}-job"})
            except Exception as exc:
                self.tally.error("upload", f"soak-{self.k} job {job.location}: {type(exc).__name__}: {exc}")
                over = True
            if over:
                self.jobs.remove(job)

    def _delete(self, headers: dict[str, str], note: Note) -> None:
        _expect(self.http.delete(f"/v1/documents/{quote(note.doc_id)}", headers=headers), 200)
        self.ledger.deleted_ok(note)


def _window(tally: Tally, op: str, start: float, end: float) -> dict[str, Any]:
    times = [ms for at, ms in tally.latency[op] if start <= at < end]
    return {"from_s": round(start, 1), "to_s": round(end, 1), "n": len(times), "p50_ms": pct(times, 50),
            "p95_ms": pct(times, 95)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _final_check(url: str, ledger: Ledger, rng: random.Random) -> dict[str, Any]:
    """Every live note listed, none deleted listed, and a sample of them answering its fact with a citation of
    itself: asked by its code (the target) and in the fact's words (shared by every note)."""
    notes = ledger.notes()
    with httpx.Client(base_url=url, timeout=60) as http:
        listed = {d["doc_id"] for d in _expect(http.get("/v1/documents"), 200)["documents"]}
        missing = [n.doc_id for n in notes if n.doc_id not in listed]
        sample = rng.sample(notes, min(ANSWER_SAMPLE, len(notes)))
        misses: dict[str, list[dict]] = {"question": [], "worded": []}
        for note in sample:
            for kind, question in (("question", note.question), ("worded", note.worded)):
                answer = _expect(http.post("/v1/ask", json={"question": question}), 200)
                if not _cites(answer, note.doc_id):
                    misses[kind].append({"doc_id": note.doc_id, "question": question,
                                         "answer": answer["answer"][:200],
                                         "cited": [c["doc_id"] for c in answer["citations"]]})
    return {"ledger": len(notes), "present": len(notes) - len(missing), "missing": missing[:SAMPLES],
            "deleted": len(ledger.deleted), "deleted_still_listed": sorted(ledger.deleted & listed)[:SAMPLES],
            "answer_checked": len(sample), "answerable": len(sample) - len(misses["question"]),
            "answerable_worded": len(sample) - len(misses["worded"]),
            "answer_misses": misses["question"][:10], "worded_misses": misses["worded"][:10]}


def _server_log(log: Path) -> dict[str, Any]:
    """Warnings, errors and tracebacks the server logged (JSON lines; other lines are its startup):
    counts by level, and the commonest messages (numbers as N) with a request id that logged each."""
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    example: dict[str, str] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            levels["traceback" if line.startswith("Traceback") else "other"] += 1
            continue
        levels[entry.get("level", "?")] += 1
        if entry.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            cause = (entry.get("traceback") or "").strip().splitlines()[-1:]  # the exception, when there is one
            key = re.sub(r"\d+", "N", " ".join([entry["level"], entry.get("message", "")[:300], *cause]))
            messages[key] += 1
            example.setdefault(key, str(entry.get("request_id")))
    worse = sum(levels[k] for k in ("WARNING", "ERROR", "CRITICAL", "traceback"))
    return {"path": str(log), "lines_by_level": dict(levels), "warnings_or_worse": worse,
            "commonest": [{"message": m, "times": n, "request_id": example[m]} for m, n in messages.most_common(SAMPLES)]}


def _rss_until(server: Server, t0: float, deadline: float, every: float) -> list[tuple[float, float, float]]:
    """(seconds since t0, MB of the server and its children, MB of the server alone), every ``every`` s until
    ``deadline`` and once at it."""
    series = []
    while (now := time.perf_counter()) < deadline:
        series.append((round(now - t0, 1), server.rss_mb(children=True), server.rss_mb()))
        time.sleep(min(every, deadline - now))
    series.append((round(time.perf_counter() - t0, 1), server.rss_mb(children=True), server.rss_mb()))
    return series


def _median_in(series: list[tuple[float, float, float]], column: int, start: float, end: float) -> float:
    return statistics.median(row[column] for row in series if start <= row[0] <= end)


def run(seconds: float = 600.0) -> dict[str, Any]:
    """Soak one fresh `rag serve` (bundled corpus, temp data dir) for ``seconds`` of mixed traffic."""
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    warm, window = min(WARMUP_S, 0.1 * seconds), min(WINDOW_S, 0.2 * seconds)
    questions, pool = varied_questions(100), corpus_sentences()
    ledger, warm_up, tally = Ledger(), Tally(), Tally()
    with serving(work / "data", log=work / "server.log", RAG_LOG_FORMAT="json",
                 RAG_API_JOB_THRESHOLD_BYTES=str(JOB_THRESHOLD_BYTES)) as server:
        cold = server.first_answer_seconds(questions[0])
        clients = [Client(k, server.url, questions, pool, ledger, warm_up) for k in range(CLIENTS)]
        rss_idle = server.rss_mb(children=True)
        with ThreadPoolExecutor(CLIENTS) as threads:
            warm_up.t0 = time.perf_counter()
            list(threads.map(Client.warm_up, clients))
            for client in clients:
                client.tally = tally
            t0 = tally.t0 = time.perf_counter()
            running = [threads.submit(c.run, t0 + seconds) for c in clients]
            rss = _rss_until(server, t0, t0 + seconds, min(RSS_EVERY_S, seconds / 60))
            for r in running:
                r.result()
        wall = time.perf_counter() - t0
        final = _final_check(server.url, ledger, random.Random(0))
    start = _window(tally, "ask", warm, warm + window)
    end = _window(tally, "ask", seconds - window, seconds)
    # RSS swings by a few hundred MB with the requests in flight (8 clients, embedding batches): compare the
    # median of the samples in the start window with that of the end window, not two single samples.
    windows = {"start": (warm, warm + window), "middle": (seconds / 2 - window / 2, seconds / 2 + window / 2),
               "end": (seconds - window, float("inf"))}
    rss_start, rss_middle, rss_end = (_median_in(rss, 1, *windows[k]) for k in ("start", "middle", "end"))
    # the server alone and its parse workers apart: a worker's heap grows until it is replaced (200 files)
    server_only = {k: _median_in(rss, 2, *span) for k, span in windows.items()}
    return {
        "seconds": seconds, "wall_s": wall, "clients": CLIENTS, "mix": MIX, "warmup_s": warm, "window_s": window,
        "cold_start_s": cold,
        "warm_up": {"seconds": t0 - warm_up.t0, "requests": warm_up.requests(), "errors": sum(warm_up.errors.values()),
                    "upload_p50_ms": pct([ms for _, ms in warm_up.latency["upload"]], 50),
                    "counts": dict(warm_up.counts), "job_p50_s": pct(warm_up.job_seconds, 50)},
        "requests": tally.requests(), "rps": tally.requests() / wall,
        "errors": sum(tally.errors.values()) + sum(warm_up.errors.values()),
        "backoffs_429": sum(tally.backoffs.values()) + sum(warm_up.backoffs.values()),
        "error_samples": (warm_up.samples + tally.samples)[:SAMPLES],
        "by_op": {op: {"requests": tally.requests(op), "errors": tally.errors[op], "backoffs_429": tally.backoffs[op],
                       "p50_ms": pct([ms for _, ms in tally.latency[op]], 50),
                       "p95_ms": pct([ms for _, ms in tally.latency[op]], 95)} for op in MIX},
        "ask_start": start, "ask_end": end,
        "drift_p50": _ratio(end["p50_ms"], start["p50_ms"]), "drift_p95": _ratio(end["p95_ms"], start["p95_ms"]),
        "rss_idle_mb": rss_idle, "rss_after_warm_up_mb": rss[0][1], "rss_start_mb": rss_start, "rss_end_mb": rss_end,
        "rss_server_mb": server_only, "rss_children_mb": {k: round({"start": rss_start, "middle": rss_middle,
                                                                  "end": rss_end}[k] - v, 1) for k, v in server_only.items()},
        "rss_end_children_mb": rss_end - server_only["end"], "rss_peak_mb": max(row[1] for row in rss),
        "rss_growth": rss_end / rss_start, "rss_growth_second_half": rss_end / rss_middle,
        "rss_growth_server": server_only["end"] / server_only["start"], "rss_series": rss,
        "during": dict(tally.counts), "job_p50_s": pct(tally.job_seconds, 50), "job_p95_s": pct(tally.job_seconds, 95),
        "final": final, "server_log": _server_log(work / "server.log"),
    }
