"""The shared test kit: loopback ports, a clean environment, child processes that announce themselves,
and a real ``chroma run`` server. Importable from any test module (``tests/`` is on ``sys.path`` because
it holds the root ``conftest.py``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench.processes import (CHROMA, ChildProcess, ChromaServer, PostgresServer, free_port,  # noqa: F401 — one harness
                             http_ok)
from rag.answerability.model import default_model
from rag.settings import Settings

#: Variables that could point a test at a real server or model: every ``RAG_*`` one and the OpenAI client's own.
PROVIDER_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL")


#: The answerability model is calibrated on MiniLM features; the fast tier's hash embedder gives lower cosines,
#: so fast tests answer when the best sentence's logit reaches this, about 1.5 below where the model's own
#: threshold lies. Slow tests run the real model at the model's own threshold.
FAST_TIER_BEST_LOGIT = -4.8
#: The same gate as a confidence on the stored model's scale (a refit that rescales confidence moves it along).
FAST_TIER_MIN_CONFIDENCE = round(default_model().answer_confidence(FAST_TIER_BEST_LOGIT), 4)


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


def rag_command(*args: str) -> list[str]:
    """The ``rag`` CLI run by this interpreter."""
    return [sys.executable, "-m", "api.cli", *args]




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
