#!/usr/bin/env bash
# One command: installs what is missing (nginx, wrk, varnish from Debian), builds in release
# mode, and runs bench/bench.py (pass its options through, e.g. --duration 10 --rounds 5).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v varnishd >/dev/null || missing+=(varnish)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The packaged services must not hold our ports or run beside the benchmark.
systemctl stop nginx varnish >/dev/null 2>&1 || true
echo "bench: building (release)"
cargo build --release --locked --bin mango-store --example bench_biz --example bench_floor
exec python3 bench/bench.py "$@"
