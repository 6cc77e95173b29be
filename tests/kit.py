"""The shared test kit: loopback ports, a clean environment, child processes that announce themselves,
and a real ``chroma run`` server. Importable from any test module (``tests/`` is on ``sys.path`` because
it holds the root ``conftest.py``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from rag.settings import REPO_ROOT, Settings

#: Variables that could point a test at a real server or model: every ``RAG_*`` one and the OpenAI client's own.
PROVIDER_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL")
CHROMA = Path(sys.executable).parent / "chroma"


#: The answerability model is calibrated on MiniLM features; the fast tier's hash embedder gives lower cosines,
#: so fast tests answer above this lower threshold. Slow tests run the real model at the model's own threshold.
FAST_TIER_MIN_CONFIDENCE = 0.02


def hash_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings rooted in ``data_dir`` with the hashed bag-of-words embedder (fast, offline, tells texts apart),
    files read in process (no parse worker to start per app)."""
    settings = Settings(data_dir=data_dir, **overrides)
    settings.embed.provider = "hash"
    if "parse" not in overrides:  # files are read in process: the bounded worker has its own tests
        settings.parse.isolate = False
    return settings


def is_configuration(name: str) -> bool:
    return name.upper().startswith("RAG_") or name in PROVIDER_VARIABLES


def clear_env(mp: pytest.MonkeyPatch) -> None:
    """Remove this shell's configuration from the test process; models load offline."""
    for name in list(os.environ):
        if is_configuration(name):
            mp.delenv(name, raising=False)
    mp.setenv("HF_HUB_OFFLINE", "1")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without configuration, for a child process, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not is_configuration(k)}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    return env


def free_port() -> int:
    """A loopback port nothing listens on (closed again when returned)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rag_command(*args: str) -> list[str]:
    """The ``rag`` CLI run by this interpreter."""
    return [sys.executable, "-m", "api.cli", *args]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class ChildProcess:
    """A child started with its output in a log file, waited for by a line it prints or a URL it serves."""

    def __init__(self, command: list[str], env: dict[str, str] | None, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def wait_until(self, ready: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := ready():
                return result
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode} before {what}:\n{self.log_tail()}")
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"not {what} within {timeout} s:\n{self.log_tail()}")

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        def line() -> str | None:
            return next((ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines()
                         if ln.startswith(prefix)), None)

        return str(self.wait_until(line, timeout, f"printing a line starting {prefix!r}"))

    def wait_for_url(self, url: str, timeout: float) -> None:
        self.wait_until(lambda: http_ok(url), timeout, f"answering 200 at {url}")

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()


class ChromaServer:
    """A real ``chroma run`` on a loopback port, started and stopped by a test."""

    def __init__(self, path: Path, log: Path, port: int | None = None) -> None:
        self.path, self.log, self.port = path, log, port or free_port()
        self.child: ChildProcess | None = None

    @property
    def heartbeat(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v2/heartbeat"

    def start(self, timeout: float = 60.0) -> "ChromaServer":
        assert CHROMA.exists(), f"chroma CLI not found at {CHROMA}"
        self.child = ChildProcess([str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1",
                                   "--port", str(self.port)], None, self.log)
        self.child.wait_for_url(self.heartbeat, timeout)
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None


def build_pdf(objects: list[bytes]) -> bytes:
    """A PDF whose object i+1 is ``objects[i]`` (object 1 the catalog), with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
