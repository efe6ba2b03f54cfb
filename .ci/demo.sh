# Sourced by .ci/schemathesis and .ci/client: `start_demo` builds the binary, starts
# `mango-store demo` on a free port with a fresh database in a temporary folder, waits until
# it is ready and sets `base` (http://127.0.0.1:PORT); the demo is stopped on exit.
# Extra environment for the demo can be given in `demo_env` (an array of NAME=VALUE).

start_demo() {
  cargo build --locked --quiet
  local binary="${CARGO_TARGET_DIR:-target}/debug/mango-store"
  demo_dir=$(mktemp -d)
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  base="http://127.0.0.1:$port"
  env MANGO_LOG=warn ${demo_env[@]+"${demo_env[@]}"} \
    "$binary" demo --bind "127.0.0.1:$port" --database "$demo_dir/demo.db" \
    >"$demo_dir/demo.log" 2>&1 </dev/null &
  demo_pid=$!
  trap stop_demo EXIT
  for _ in $(seq 1 100); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
      "$base/readyz" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$demo_pid" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  cat "$demo_dir/demo.log" >&2
  echo "ci: the demo did not start" >&2
  exit 1
}

stop_demo() {
  kill "$demo_pid" 2>/dev/null || true
  wait "$demo_pid" 2>/dev/null || true
  rm -rf "$demo_dir"
}
