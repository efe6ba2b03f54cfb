#!/usr/bin/env bash
# The consistency checker as a soak: `bench/soak.sh --minutes N` runs tests/consistency.rs
# for N minutes (three `serve` processes, readers, a webhook writer, booking clients, Biz
# faults, SIGKILLs every 150 s, database outages every 100 s) and prints its summary line.
# With MANGO_TEST_MSSQL_URL set it runs on that TDS server instead of a SQLite file.
# MANGO_CHECKER_SEED replays a run; MANGO_CHECKER_RSS_MIB sets the memory bound (default 512).
set -euo pipefail
minutes=10
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --minutes=*) minutes="${1#*=}"; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "usage: bench/soak.sh [--minutes N]" >&2; exit 2 ;;
  esac
done
case "$minutes" in ''|*[!0-9]*) echo "--minutes takes a whole number" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
export MANGO_CHECKER_SECS=$((minutes * 60))
exec cargo test --test consistency -- --nocapture
