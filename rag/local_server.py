"""llama.cpp's own OpenAI-compatible server, run inside this process by the ``xllamacpp`` wheel.

``start_local_server`` loads a GGUF file and listens on 127.0.0.1; the server's
threads live until the process exits (``xllamacpp`` has no stop: a process that
must stop it, such as a test, runs ``rag llm serve`` as a child and signals it).
One server per (model, threads, context) is kept per process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rag.errors import LocalModelError
from rag.local_model import resolve_model
from rag.settings import LocalSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalServer:
    model_path: Path
    base_url: str  # ends in /v1, for the ``openai`` client
    threads: int
    ctx: int
    started_in_s: float

    @property
    def model_name(self) -> str:
        """The name the server reports in ``/v1/models`` (any name is accepted in requests)."""
        return self.model_path.name


_servers: dict[tuple[Path, int, int, int], LocalServer] = {}
_lock = threading.Lock()


def default_threads() -> int:
    """All cores but one (the service's own work needs one), at least one."""
    return max(1, (os.cpu_count() or 2) - 1)


def start_local_server(settings: LocalSettings, data_dir: Path, *, port: int | None = None) -> LocalServer:
    """Assemble the model if needed and start (or reuse) its server; a clear error when that cannot be done."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise LocalModelError("the local model server is not installed: run `pip install -e '.[local]'`",
                              missing="xllamacpp") from exc
    path = resolve_model(settings.model, data_dir)
    threads = settings.threads or default_threads()
    port = settings.port if port is None else port
    key = (path.resolve(), threads, settings.ctx, port)
    with _lock:
        if key in _servers:
            return _servers[key]
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = settings.ctx  # 0 would mean the model's whole 32k context, and its memory
        params.n_parallel = 1  # one answer at a time: on a laptop CPU parallel slots only share the same cores
        params.port = port
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.cache_prompt = True  # the fixed instructions come first and are read once
        params.warmup = False
        params.verbosity = settings.log_verbosity
        began = time.perf_counter()
        try:
            server = xllamacpp.Server(params)
        except Exception as exc:  # noqa: BLE001 — xllamacpp raises RuntimeError with no detail
            raise LocalModelError(f"the local model server did not start with {path.name} "
                                  f"(port {port}, context {settings.ctx}): {exc}", model=str(path)) from exc
        started = LocalServer(path, server.listening_address.rstrip("/") + "/v1", threads, settings.ctx,
                              round(time.perf_counter() - began, 2))
        _servers[key] = started
        _keep_alive.append(server)
        log.info("local model %s listening on %s (%d threads, context %d, started in %.1f s)",
                 path.name, started.base_url, threads, settings.ctx, started.started_in_s)
        return started


_keep_alive: list[object] = []  # the xllamacpp.Server objects: dropping one would stop its server
