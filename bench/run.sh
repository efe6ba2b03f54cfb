#!/usr/bin/env bash
# One command: installs what is missing (nginx, wrk, varnish from Debian; oha with cargo), builds the
# production profile (what the Docker image ships), and runs bench/bench.py (pass its options through, e.g. --duration 10 --rounds 5,
# or --only fixed,sizes for some sections).
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
# oha (the fixed-rate load generator) is not packaged in Debian stable.
if ! command -v oha >/dev/null && [ ! -x "$HOME/.cargo/bin/oha" ]; then
  echo "bench: installing oha (cargo install oha --locked)"
  cargo install oha --locked
fi
# The packaged services must not hold our ports or run beside the benchmark.
systemctl stop nginx varnish >/dev/null 2>&1 || true
echo "bench: building (the production profile: release + fat LTO; ~9 minutes from scratch on 2 cores)"
cargo build --profile production --locked --bin mango-store --example bench_biz --example bench_floor
exec python3 bench/bench.py "$@"
