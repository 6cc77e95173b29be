"""Helpers shared by the API tests (imported by name: tests/api is on sys.path)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from kit import FAST_TIER_MIN_CONFIDENCE, hash_settings
from rag.settings import BUNDLED_CORPUS, Settings

BUNDLED_IDS = sorted(p.name for p in BUNDLED_CORPUS.glob("*.txt"))
KEY = "k"
def make_settings(data_dir: Path, *, key: str | None = None, **overrides) -> Settings:
    settings = hash_settings(data_dir, **overrides)
    settings.answer.min_confidence = FAST_TIER_MIN_CONFIDENCE
    if key is not None:
        settings.api.key = SecretStr(key)
    return settings


def assert_envelope(response, status: int, code: str | None = None) -> dict:
    """The one error envelope: {"error": {"code", "message", "details"}} with a non-empty message."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"].strip()
    assert isinstance(error["details"], dict)
    # every error names its request, as the response header does; the caller sees the other details
    assert error["details"].pop("request_id") == response.headers["x-request-id"]
    if code is not None:
        assert error["code"] == code, error
    return error


def uploads_listing(data_dir: Path) -> list[str]:
    """Every entry under data_dir/uploads, hidden ones included."""
    folder = Path(data_dir) / "uploads"
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
