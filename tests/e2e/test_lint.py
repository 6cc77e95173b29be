"""The code holds no unused imports, undefined names or syntax errors (ruff's pyflakes rules, pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rag.settings import REPO_ROOT

PACKAGES = ["rag", "index", "api", "eval", "bench", "tests", "scripts"]


def test_pyflakes_finds_nothing():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "--no-cache", *PACKAGES], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
