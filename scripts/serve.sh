#!/usr/bin/env bash
# Set up, then serve the API on the bundled corpus (ingested on first start), offline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/rag serve "$@"
