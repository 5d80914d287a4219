#!/usr/bin/env bash
# Install the Debian packages the tests need, only those missing:
#   - PostgreSQL 15 server binaries (initdb, pg_ctl) for the real-server tests;
#   - Chromium for the headless checks of the HTML report;
#   - a Java 17 runtime for the Spark tests (pyspark brings Spark's jars, not a JVM).
# Needs root (or sudo). Idempotent and quiet when everything is present.
set -euo pipefail

missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "system-deps: need root to install: ${missing[*]}" >&2
        exit 1
    fi
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package starts a cluster of its own; the tests start theirs, so stop it.
if [ -x /usr/sbin/service ] && [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
    $SUDO service postgresql stop >/dev/null 2>&1 || true
fi
