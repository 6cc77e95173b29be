#!/usr/bin/env bash
# Make sure Debian's PostgreSQL 15 is present for the shared-store tests (installs it when running as root
# with apt). The tests start their own server in a temporary directory; nothing is started here.
set -euo pipefail
if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian's postgresql for the shared-store tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  # the package starts a cluster of its own: the tests do not use it
  pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
else
  echo "setup: PostgreSQL 15 not found and cannot be installed here (needs root + apt); its tests will be skipped" >&2
fi
