#!/usr/bin/env bash
# Make sure Debian's Chromium is present for the browser tests (installs it when running as root with apt).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium for the browser tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "setup: chromium not found and cannot be installed here (needs root + apt); browser tests will be skipped" >&2
fi
