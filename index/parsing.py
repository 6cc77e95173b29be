"""Parsing files with bounds: a hostile file costs a skipped entry, never the service.

Readers are third-party code (BeautifulSoup, pypdf) fed untrusted files; one
HTML file of a million nested tags keeps BeautifulSoup busy for minutes. With
``RAG_PARSE_ISOLATE`` (the default) every file is read by a long-lived worker
process (``python -m index.parsing``) whose memory is capped (an address-space
limit set above what it uses once started, so the cap is what a parse may
*add*) and whose answer is awaited at most ``RAG_PARSE_TIMEOUT_S`` seconds. A
parse that runs out of time is killed with its process; one that runs out of
memory fails inside it; either way the file is skipped with the reason and the
next file gets a fresh (or the same) worker. The caller waits on a pipe, not on
the interpreter lock, so the service goes on answering meanwhile.

The protocol is one JSON line each way: ``{"path": …}`` in, then
``{"text", "metadata"}`` or ``{"error"}`` out.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Protocol

from llama_index.core import Document

from index.loaders import UnreadableFileError, load_file
from rag.settings import ParseSettings

log = logging.getLogger(__name__)

WORKER_START_TIMEOUT_S = 60
FILES_PER_WORKER = 200  # then a fresh worker: a parser's heap only grows (fragmentation), ~1 s to replace


class FileParser(Protocol):
    def load(self, path: Path) -> Document:
        """The stored-text Document of ``path``, or raise :class:`UnreadableFileError`."""
        ...

    def close(self) -> None: ...


class InProcessParser:
    """Reads in the calling thread: no bounds (trusted files, tests, benchmarks of the parse cost)."""

    def load(self, path: Path) -> Document:
        return load_file(path)

    def close(self) -> None:
        pass


class IsolatedParser:
    """Reads each file in a worker process bounded in time and memory (one parse at a time)."""

    def __init__(self, limits: ParseSettings) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._worker: subprocess.Popen[bytes] | None = None
        self._files_read = 0

    def load(self, path: Path) -> Document:
        path = Path(path)
        with self._lock:
            worker = self._running_worker()
            assert worker.stdin is not None and worker.stdout is not None
            try:
                worker.stdin.write(json.dumps({"path": str(path)}).encode() + b"\n")
                worker.stdin.flush()
            except BrokenPipeError:
                self._stop()
                raise UnreadableFileError(f"{path.name}: the parser process ended unexpectedly") from None
            reply = self._await_reply(worker, path)
            self._files_read += 1
        if "error" in reply:
            raise UnreadableFileError(reply["error"])
        return Document(text=reply["text"], metadata=reply["metadata"])

    def close(self) -> None:
        with self._lock:
            self._stop()

    # ---- the worker ---------------------------------------------------------

    def _running_worker(self) -> subprocess.Popen[bytes]:
        if self._worker is not None and (self._worker.poll() is not None or self._files_read >= FILES_PER_WORKER):
            self._stop()  # it died between files, or has read its share
        if self._worker is None:
            self._worker = subprocess.Popen(
                [sys.executable, "-m", "index.parsing", str(self.limits.max_memory_mb)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            # A parser dropped without close() still ends its worker (and closes the pipes, quietly).
            self._finalizer = weakref.finalize(self, _end, self._worker)
            self._files_read = 0
            # Start-up (imports) is not part of any file's time: wait for the worker's "ready" line first.
            assert self._worker.stdout is not None
            ready = _readable(self._worker.stdout, WORKER_START_TIMEOUT_S)
            if not ready or json.loads(self._worker.stdout.readline() or "{}").get("ready") is not True:
                self._stop()
                raise UnreadableFileError(f"the parser process did not start within {WORKER_START_TIMEOUT_S} s")
        return self._worker

    def _await_reply(self, worker: subprocess.Popen[bytes], path: Path) -> dict:
        assert worker.stdout is not None
        deadline = time.monotonic() + self.limits.timeout_s
        if not _readable(worker.stdout, self.limits.timeout_s):
            self._stop()
            log.warning("parse of %s killed after %.0f s", path.name, self.limits.timeout_s)
            raise UnreadableFileError(f"{path.name}: took longer than the {self.limits.timeout_s:g}-second "
                                      "parse limit (RAG_PARSE_TIMEOUT_S)")
        line = worker.stdout.readline()  # the worker writes its whole reply at once
        if not line:
            code = worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            self._stop()
            why = f"signal {-code}" if code < 0 else f"exit code {code}"
            raise UnreadableFileError(f"{path.name}: the parser process died reading this file ({why}); most often "
                                      f"it needed more than the {self.limits.max_memory_mb} MB parse memory limit "
                                      "(RAG_PARSE_MAX_MEMORY_MB)")
        return json.loads(line)

    def _stop(self) -> None:
        """Kill the worker (if still alive) and release its pipes."""
        if self._worker is not None:
            self._finalizer()
            self._worker = None


def _readable(stream: IO[bytes], timeout: float) -> bool:
    """Whether ``stream`` has data (or hit EOF) within ``timeout`` seconds. A selector, not select(): a
    server holds many files, and select() refuses descriptors numbered 1024 or more."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def _end(worker: subprocess.Popen[bytes]) -> None:
    worker.kill()
    worker.wait()
    for pipe in (worker.stdin, worker.stdout):
        if pipe is not None:
            pipe.close()


def build_parser(limits: ParseSettings) -> FileParser:
    return IsolatedParser(limits) if limits.isolate else InProcessParser()


# ---- inside the worker process ------------------------------------------------

def _cap_memory(extra_mb: int) -> None:
    """Let this process grow by at most ``extra_mb`` beyond its size now (Unix; elsewhere no cap)."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = size + extra_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError):
        pass


def _serve(max_memory_mb: int) -> None:
    import bs4, pypdf  # noqa: F401,E401 — the readers' libraries, loaded before the cap so it bounds the parse only

    _cap_memory(max_memory_mb)
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        path = Path(json.loads(line)["path"])
        try:
            doc = load_file(path)
            reply = {"text": doc.text, "metadata": doc.metadata}
        except UnreadableFileError as exc:
            reply = {"error": exc.message}
        except MemoryError:
            reply = {"error": f"{path.name}: needs more than the {max_memory_mb} MB parse memory limit "
                              "(RAG_PARSE_MAX_MEMORY_MB)"}
        except RecursionError:
            reply = {"error": f"{path.name}: nested too deeply to read"}
        except Exception as exc:  # a reader failing on one file answers with why, and the worker goes on
            reply = {"error": f"{path.name}: unreadable ({type(exc).__name__}: {exc})"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
