"""Child processes for the tests and the benchmarks alike: a loopback port, a process started with its output
in a log file and waited for by a line it prints or a URL it serves, and a real ``chroma run`` server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

from rag.settings import REPO_ROOT

CHROMA = Path(sys.executable).parent / "chroma"


def free_port() -> int:
    """A loopback port nothing listens on (closed again when returned)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresServer:
    """A real PostgreSQL server (Debian's postgresql 15) in a temporary directory on a loopback port.

    The server refuses to run as root: as root, ``initdb`` and ``pg_ctl`` run as the ``postgres`` user the
    package creates (the directory is handed to it, so it must not sit inside a directory only root may
    enter: give it one made by ``tempfile.mkdtemp()``); otherwise as the current user. Trust authentication on
    127.0.0.1 only; ``url`` names database ``rag``."""

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path, self.port = Path(path), port or free_port()
        self.data = self.path / "pgdata"
        self.log = self.path / "postgres.log"

    @staticmethod
    def available() -> bool:
        return (PG_BIN / "pg_ctl").exists()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/rag"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        import os

        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd="/")
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done

    def start(self, timeout: float = 60.0) -> "PostgresServer":
        import os
        import shutil

        assert self.available(), f"PostgreSQL not found in {PG_BIN}: run scripts/setup-postgres.sh"
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.path, "postgres", "postgres")
        if not self.data.exists():
            self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C.UTF-8")
        self.resume(timeout)
        self._run(str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                  "-c", "CREATE DATABASE rag", check=False)
        return self

    def resume(self, timeout: float = 60.0) -> None:
        """Start (again) on the same port and data directory."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)),
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.path} -c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        if self.data.exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
