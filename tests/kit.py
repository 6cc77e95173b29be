"""Shared test helpers: ports and child processes that announce where they listen."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from rag.settings import REPO_ROOT


def free_port() -> int:
    """A loopback port nothing listens on (closed again when returned)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without RAG_ or OpenAI settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAG_") and k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    return env


def rag_command(*args: str) -> list[str]:
    """The ``rag`` CLI run by this interpreter."""
    return [sys.executable, "-m", "api.cli", *args]


class ChildProcess:
    """A child started with its output in a log file; ``wait_for_line`` reads until a line matches."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line.strip()
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.1)
        raise AssertionError(f"no line starting {prefix!r} within {timeout} s:\n{self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
