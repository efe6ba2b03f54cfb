#!/usr/bin/env python3
"""The read-path benchmark: the same catalog bytes served four ways, measured with wrk.

Targets: a bare axum handler answering from memory (the floor for this stack), nginx
proxy_cache (with proxy_cache_lock and use_stale) in front of a static Biz, mango-store in
front of the same Biz, and Varnish when it is installed. Servers are pinned to core 0, wrk to
core 1; rounds alternate between targets and medians are reported. Then: 200 concurrent cold
misses (Biz calls counted), memory with 100,000 cached items, and start-to-ready time.

Run it with bench/run.sh, which installs what is missing and builds the production profile.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "production")
PORTS = {"biz": 18101, "floor": 18102, "nginx": 18103, "mango": 18104, "varnish": 18105, "biz_slow": 18106, "mango_mem": 18107}
ADMIN = "bench-admin-token"
SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMh"
PATHS = {"list": "/api/v1/services", "item": "/api/v1/services/svc_bench_00"}
SERVER_CORE, LOAD_CORE = "0", "1"

procs = []


def spawn(cmd, env=None, core=SERVER_CORE, **kw):
    full = ["taskset", "-c", core] + cmd
    p = subprocess.Popen(full, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, **kw)
    procs.append(p)
    return p


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def wait_ready(url, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            status, _, _ = http("GET", url, timeout=1)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"bench: {url} did not come up")


def mango_env(port, db, biz_port):
    return {
        "MANGO_BIND": f"127.0.0.1:{port}",
        "MANGO_DATABASE_URL": f"sqlite://{db}",
        "MANGO_BIZ_API_URL": f"http://127.0.0.1:{biz_port}",
        "MANGO_BIZ_API_KEY": "bench-key",
        "MANGO_WEBHOOK_SECRETS": SECRET,
        "MANGO_ADMIN_TOKEN": ADMIN,
        "MANGO_CACHE_MAX_ENTRIES": "200000",
    }


def create_store(port, slug, business):
    status, body, _ = http("POST", f"http://127.0.0.1:{port}/admin/v1/stores",
                           {"slug": slug, "name": slug, "biz_business_id": business},
                           {"Authorization": f"Bearer {ADMIN}"})
    if status not in (201, 409):
        raise SystemExit(f"bench: creating store {slug}: {status} {body[:200]}")


def nginx_conf(tmp):
    cache = os.path.join(tmp, "nginx-cache")
    os.makedirs(cache, exist_ok=True)
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        # Workers would otherwise run as an unprivileged user that cannot write the cache here.
        user = "user root;" if os.geteuid() == 0 else ""
        f.write(f"""
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  proxy_cache_path {cache} levels=1:2 keys_zone=catalog:10m max_size=100m inactive=1d;
  upstream biz {{ server 127.0.0.1:{PORTS['biz']}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{PORTS['nginx']};
    location ~ ^/api/v1/(.*)$ {{
      proxy_pass http://biz/biz-api/v1/$1?business_id=bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer bench-key";
      proxy_cache catalog;
      proxy_cache_key $uri;
      proxy_cache_valid 200 5m;
      proxy_cache_lock on;
      proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
      add_header X-Cache $upstream_cache_status;
    }}
  }}
}}
""")
    return conf


def varnish_vcl(tmp):
    vcl = os.path.join(tmp, "bench.vcl")
    with open(vcl, "w") as f:
        f.write(f"""vcl 4.1;
backend biz {{ .host = "127.0.0.1"; .port = "{PORTS['biz']}"; }}
sub vcl_recv {{
  set req.url = regsub(req.url, "^/api/v1/(.*)$", "/biz-api/v1/\\1?business_id=bench");
  unset req.http.Cookie;
  return (hash);
}}
sub vcl_backend_response {{ set beresp.ttl = 5m; set beresp.grace = 1d; }}
""")
    return vcl


WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
WRK_ERR = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def wrk(url, headers, duration, connections):
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(WRK_RPS.search(out).group(1))
    value, unit = WRK_P99.search(out).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = int(WRK_ERR.search(out).group(1)) if WRK_ERR.search(out) else 0
    if errors:
        raise SystemExit(f"bench: {errors} non-2xx answers from {url}")
    return rps, p99_ms


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--memory-items", type=int, default=100_000)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-cargo-benches", action="store_true",
                    help="skip the webhook benchmark and the criterion micro-benchmarks")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="mango-bench-")
    os.chmod(tmp, 0o755)  # varnishd reads its VCL after dropping privileges
    try:
        run(args, tmp)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp):
    mango = os.path.join(RELEASE, "mango-store")
    spawn([os.path.join(RELEASE, "examples", "bench_biz"), str(PORTS["biz"])])
    spawn([os.path.join(RELEASE, "examples", "bench_floor"), str(PORTS["floor"])])
    spawn(["nginx", "-c", nginx_conf(tmp), "-g", "daemon off;"])
    targets = {
        "floor": (f"http://127.0.0.1:{PORTS['floor']}", {}),
        "nginx": (f"http://127.0.0.1:{PORTS['nginx']}", {}),
        "mango": (f"http://127.0.0.1:{PORTS['mango']}", {"X-Store-Id": "bench"}),
    }
    if shutil.which("varnishd"):
        spawn(["varnishd", "-F", "-a", f"127.0.0.1:{PORTS['varnish']}", "-f", varnish_vcl(tmp),
               "-n", os.path.join(tmp, "varnish"), "-s", "malloc,64m"])
        targets["varnish"] = (f"http://127.0.0.1:{PORTS['varnish']}", {})
    spawn([mango, "serve"], env=mango_env(PORTS["mango"], os.path.join(tmp, "bench.db"), PORTS["biz"]))
    for name, (base, _) in targets.items():
        wait_ready(base + ("/readyz" if name == "mango" else "/api/v1/services"))
    create_store(PORTS["mango"], "bench", "bench")

    # Warm every cache, and check that every target serves the same catalog.
    sizes = {}
    for name, (base, headers) in targets.items():
        for path in PATHS.values():
            for _ in range(3):
                status, body, _ = http("GET", base + path, headers=headers)
                assert status == 200, (name, path, status)
            sizes[(name, path)] = len(body)
    for path in PATHS.values():
        print(f"bytes {path}: " + ", ".join(f"{n} {sizes[(n, path)]}" for n in targets))

    results = {(n, p): [] for n in targets for p in PATHS}
    for r in range(args.rounds):
        for pname, path in PATHS.items():
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                base, headers = targets[name]
                results[(name, pname)].append(wrk(base + path, headers, args.duration, args.connections))
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    print()
    print(f"{'path':6} {'target':8} {'req/s (median)':>15} {'p99 ms (median)':>16}")
    med = {}
    for (name, pname), runs in results.items():
        rps = statistics.median(x[0] for x in runs)
        p99 = statistics.median(x[1] for x in runs)
        med[(name, pname)] = (rps, p99)
    for pname in PATHS:
        for name in targets:
            rps, p99 = med[(name, pname)]
            print(f"{pname:6} {name:8} {rps:15.0f} {p99:16.2f}")
    print()
    goals = []
    for pname in PATHS:
        m, n, f = med[("mango", pname)], med[("nginx", pname)], med[("floor", pname)]
        print(f"{pname}: mango/nginx {m[0] / n[0]:.2f}x req/s, mango/floor {m[0] / f[0]:.2f}x, "
              f"p99 mango {m[1]:.2f} ms vs nginx {n[1]:.2f} ms")
        goals += [(f"{pname}: >= 1.0x nginx req/s", m[0] >= n[0]),
                  (f"{pname}: >= 0.85x floor req/s", m[0] >= 0.85 * f[0]),
                  (f"{pname}: p99 <= nginx", m[1] <= n[1])]

    # 200 concurrent cold misses on a fresh store: one Biz fill.
    spawn([os.path.join(RELEASE, "examples", "bench_biz"), str(PORTS["biz_slow"]), "200"])
    wait_ready(f"http://127.0.0.1:{PORTS['biz_slow']}/_calls")
    db = os.path.join(tmp, "cold.db")
    cold = spawn([mango, "serve"], env=mango_env(PORTS["mango_mem"], db, PORTS["biz_slow"]))
    wait_ready(f"http://127.0.0.1:{PORTS['mango_mem']}/readyz")
    create_store(PORTS["mango_mem"], "cold", "cold")
    wrk(f"http://127.0.0.1:{PORTS['mango_mem']}/api/v1/services", {"X-Store-Id": "cold"}, 1, 200)
    _, calls, _ = http("GET", f"http://127.0.0.1:{PORTS['biz_slow']}/_calls?business_id=cold")
    calls = int(calls)
    print(f"\n200 concurrent cold misses -> {calls} Biz call(s)")
    goals.append(("200 cold misses -> 1 Biz call", calls == 1))

    # Start to ready, on an existing database.
    cold.send_signal(signal.SIGTERM)
    cold.wait(timeout=10)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        p = spawn([mango, "serve"], env=mango_env(PORTS["mango_mem"], db, PORTS["biz_slow"]))
        wait_ready(f"http://127.0.0.1:{PORTS['mango_mem']}/readyz")
        times.append((time.perf_counter() - t0) * 1000)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
    start_ms = statistics.median(times)
    print(f"start to ready (median of 5): {start_ms:.0f} ms")
    goals.append(("start to ready < 300 ms", start_ms < 300))

    if not args.skip_memory:
        n = args.memory_items
        p = spawn([mango, "serve"], env=mango_env(PORTS["mango_mem"], os.path.join(tmp, "mem.db"), PORTS["biz"]))
        wait_ready(f"http://127.0.0.1:{PORTS['mango_mem']}/readyz")
        create_store(PORTS["mango_mem"], "mem", "mem")
        before = rss_mb(p.pid)
        script = os.path.join(tmp, "items.lua")
        with open(script, "w") as f:
            f.write("""
local i = 0
init = function(args) i = tonumber(args[1]) end
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/services/svc_gen_" .. i, {["X-Store-Id"] = "mem"})
end
""")
        # wrk has no request-count limit: run it in short chunks, each starting where the
        # last one stopped, until n distinct items have been requested.
        done = 0
        while done < n:
            out = subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c32", "-d3s", "-s", script,
                                  f"http://127.0.0.1:{PORTS['mango_mem']}", "--", str(done)],
                                 capture_output=True, text=True, check=True).stdout
            done += int(re.search(r"(\d+) requests in", out).group(1))
        status, body, _ = http("GET", f"http://127.0.0.1:{PORTS['mango_mem']}/admin/v1/stores/mem/cache",
                               headers={"Authorization": f"Bearer {ADMIN}"})
        after = rss_mb(p.pid)
        entries = ""
        if status == 200:
            entries = f" ({body.decode()[:200]})"
        print(f"memory: {after:.0f} MB resident after {done} distinct items were requested "
              f"(was {before:.0f} MB){entries}")
        goals.append((f"{n} cached items resident in < 300 MB", after < 300))

    stop_all()
    if not args.skip_cargo_benches:
        print("\nwebhooks (cargo bench --bench webhooks):", flush=True)
        out = subprocess.run(["cargo", "bench", "--locked", "--bench", "webhooks"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        print(out.strip())
        m = re.search(r"([\d.]+) webhooks/s", out)
        if m:
            goals.append(("webhooks >= 2,000/s on SQLite", float(m.group(1)) >= 2000))
        m = re.search(r"p99 ([\d.]+) ms", out.split("fresh", 1)[-1])
        if m:
            goals.append(("webhook -> fresh read p99 < 5 ms", float(m.group(1)) < 5))
        print("\nmicro-benchmarks (cargo bench --bench micro):", flush=True)
        out = subprocess.run(["cargo", "bench", "--locked", "--bench", "micro", "--", "--noplot"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        print("\n".join(l for l in out.splitlines() if "time:" in l or l and not l.startswith(" ")))

    print("\ngoals:")
    for name, ok in goals:
        print(f"  [{'ok' if ok else 'MISSED'}] {name}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
