"""Measuring tools: timers, percentiles, process memory, a `rag serve` under test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from bench.processes import ChromaServer, free_port
from eval.metrics import percentile
from rag.settings import REPO_ROOT


pct = percentile  # one nearest-rank percentile for the benchmarks and the evaluation


def warm_latency(call, items: list) -> dict:
    """p50/p95 ms of ``call(item)`` over ``items``, after one warm pass over the same items."""
    for item in items:
        call(item)
    times = []
    for item in items:
        started = time.perf_counter()
        call(item)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": pct(times, 50), "p95": pct(times, 95)}


def rss_mb(pid: int | None = None, children: bool = False) -> float:
    """Resident memory of a process now (MB), from /proc; with ``children``, plus all its descendants'."""
    pid = pid or os.getpid()
    kb = 0
    for p in [pid, *descendants(pid)] if children else [pid]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except FileNotFoundError:  # a child that has just exited
            continue
        kb += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return kb / 1024


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid`` (children, their children, …), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, …
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def bench_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", **extra)
    return env


class Server:
    """A real `rag serve` subprocess on 127.0.0.1."""

    def __init__(self, data_dir: Path, log: Path | None = None, **env: str) -> None:
        """``log``: a file for the server's output (its log lines); discarded when None."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        self._log = open(log, "ab") if log else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT, env=bench_env(data_dir, **env), stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL)

    def first_answer_seconds(self, question: str, timeout: float = 180) -> float:
        """Seconds from process start to the first successful /v1/ask."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rag serve exited with {self.process.returncode}")
            try:
                r = httpx.post(f"{self.url}/v1/ask", json={"question": question}, timeout=30)
                if r.status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError("rag serve never answered")

    def rss_mb(self, children: bool = False) -> float:
        return rss_mb(self.process.pid, children)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self._log:
            self._log.close()


@contextmanager
def serving(data_dir: Path, log: Path | None = None, **env: str) -> Iterator[Server]:
    server = Server(data_dir, log, **env)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chroma_server(path: Path) -> Iterator[int]:
    """A real `chroma run` on 127.0.0.1 (its log beside its data); yields its port."""
    server = ChromaServer(path, path.parent / f"{path.name}.log").start()
    try:
        yield server.port
    finally:
        server.stop()
