#!/usr/bin/env bash
# Set up, then run every test tier (fast and slow). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-browser.sh
scripts/setup-postgres.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -m "slow or not slow" "$@"
