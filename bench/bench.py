#!/usr/bin/env python3
"""The read-path benchmark: the same catalog bytes served four ways, measured with wrk.

Targets: a bare axum handler answering from memory (the floor for this stack), nginx
proxy_cache (with proxy_cache_lock and use_stale) in front of a static Biz, mango-store in
front of the same Biz, and Varnish when it is installed. Servers are pinned to core 0, the load
generator to core 1, and while one target is measured the others are stopped (SIGSTOP), so it
has core 0 to itself; rounds alternate between targets and medians are reported.

Sections (all by default; `--only fixed,sizes` picks some):
  hits          closed-loop wrk, list and item, every target
  fixed         fixed-rate oha at 50% and 90% of nginx's measured maximum: p50/p99/p99.9
  cold          200 concurrent cold misses (Biz calls counted), start to ready
  memory        memory with 100,000 cached items
  sizes         lists of 10/100/1,000/10,000 items: HIT req/s, bytes/s, memory per item,
                cold fill through Biz pagination
  stores        10,000 stores warm on one instance: memory, HIT req/s across them
  queries       filtered and paged HITs on a 1,000-item list against an item HIT
  availability  an availability HIT against an item HIT
  overload      5,000 connections of distinct cold misses against a Biz taking 500 ms: answers,
                Retry-After, Biz calls, memory, and the first read after the flood
  mssql         with MANGO_BENCH_MSSQL_URL: cold fill, HIT req/s and webhooks on a TDS server
  cargo         cargo bench --bench webhooks and --bench micro

Run it with bench/run.sh, which installs what is missing and builds the production profile.
"""

import argparse
import contextlib
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
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What bench/run.sh builds; MANGO_BENCH_PROFILE=release runs a quicker build's binaries.
RELEASE = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                       os.environ.get("MANGO_BENCH_PROFILE", "production"))
PORTS = {"biz": 18101, "floor": 18102, "nginx": 18103, "mango": 18104, "varnish": 18105, "biz_slow": 18106,
         "mango_mem": 18107, "biz_overload": 18108, "mango_overload": 18109}
SECTIONS = ["hits", "fixed", "cold", "memory", "sizes", "stores", "queries", "availability", "overload", "mssql",
            "cargo"]
ADMIN = "bench-admin-token"
SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMh"
PATHS = {"list": "/api/v1/services", "item": "/api/v1/services/svc_bench_00"}
SERVER_CORE, LOAD_CORE = "0", "1"

procs = []


def spawn(cmd, env=None, core=SERVER_CORE, **kw):
    full = ["taskset", "-c", core] + cmd
    # Its own process group, so that a server and its workers (nginx, varnishd) can be
    # stopped and continued together.
    p = subprocess.Popen(full, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, **kw)
    procs.append(p)
    return p


def signal_group(p, sig):
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def alone(name, servers):
    """Stops every other server while `name` is measured, so it has its core to itself, and
    gives `name` a second first: it was itself stopped until a moment ago, and a process that
    resumes catches up on its timers (mango-store renews its memory lease and reads the feed;
    until then its reads go to SQL). Measured at once, that second-long catch-up alone put
    mango-store's fixed-rate p99 at 36 ms where the steady state's is 5–8 ms."""
    others = [p for n, p in servers.items() if n != name]
    for p in others:
        signal_group(p, signal.SIGSTOP)
    time.sleep(1.0)
    try:
        yield
    finally:
        for p in others:
            signal_group(p, signal.SIGCONT)


def stop_all():
    for p in procs:
        signal_group(p, signal.SIGCONT)
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
        "MANGO_DATABASE_URL": db if "://" in db else f"sqlite://{db}",
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
WRK_BYTES = re.compile(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)")
WRK_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
WRK_ERR = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def wrk(url, headers, duration, connections, script=None, script_args=(), with_bytes=False):
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if script:
        cmd += ["-s", script]
    cmd += [url]
    if script_args:
        cmd += ["--", *script_args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(WRK_RPS.search(out).group(1))
    value, unit = WRK_P99.search(out).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = int(WRK_ERR.search(out).group(1)) if WRK_ERR.search(out) else 0
    if errors:
        raise SystemExit(f"bench: {errors} non-2xx answers from {url}")
    if with_bytes:
        value, unit = WRK_BYTES.search(out).groups()
        per_s = float(value) * {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}[unit]
        return rps, p99_ms, per_s
    return rps, p99_ms


def oha_binary():
    found = shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha")
    if not os.path.exists(found):
        raise SystemExit("bench: oha is missing (bench/run.sh installs it: cargo install oha --locked)")
    return found


def oha(url, headers, duration, rate, connections):
    """A fixed-rate run (requests are sent on schedule whether or not earlier ones were
    answered, and latency counts from the scheduled time): p50, p99, p99.9 in ms, and the
    rate achieved."""
    cmd = ["taskset", "-c", LOAD_CORE, oha_binary(), "--no-tui", "-z", f"{duration}s",
           "-q", str(int(rate)), "-c", str(connections), "--latency-correction"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + ["--output-format", "json", url], capture_output=True, text=True)
    if out.returncode != 0:  # oha before 1.5 spelled it -j
        out = subprocess.run(cmd + ["-j", url], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    codes = data.get("statusCodeDistribution", {})
    bad = sum(n for code, n in codes.items() if not str(code).startswith("2"))
    if bad:
        raise SystemExit(f"bench: {bad} non-2xx answers from {url}")
    pct = data["latencyPercentiles"]
    return (pct["p50"] * 1000, pct["p99"] * 1000, pct["p99.9"] * 1000,
            data["summary"]["requestsPerSec"])


def write_lua(tmp, name, body):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(body)
    return path


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5, help="seconds per load run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--memory-items", type=int, default=100_000)
    ap.add_argument("--sizes", default="10,100,1000,10000", help="list sizes for the sizes section")
    ap.add_argument("--stores", type=int, default=10_000, help="stores for the stores section")
    ap.add_argument("--flood-connections", type=int, default=5000, help="connections for the overload section")
    ap.add_argument("--flood-seconds", type=int, default=10, help="length of the overload flood")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help="comma-separated sections to run: " + ", ".join(SECTIONS))
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-cargo-benches", action="store_true",
                    help="skip the webhook benchmark and the criterion micro-benchmarks")
    args = ap.parse_args()
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = args.only - set(SECTIONS)
    if unknown:
        raise SystemExit(f"bench: unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    if args.skip_memory:
        args.only.discard("memory")
    if args.skip_cargo_benches:
        args.only.discard("cargo")

    tmp = tempfile.mkdtemp(prefix="mango-bench-")
    os.chmod(tmp, 0o755)  # varnishd reads its VCL after dropping privileges
    try:
        run(args, tmp)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp):
    goals = []
    ctx = {"mango": os.path.join(RELEASE, "mango-store"), "tmp": tmp, "med": {}}
    # Biz answers only misses; it lives on the load core so it is never a measured target's peer.
    spawn([os.path.join(RELEASE, "examples", "bench_biz"), str(PORTS["biz"])], core=LOAD_CORE)
    if args.only & {"hits", "fixed", "queries", "availability"}:
        start_targets(args, ctx)
    if "hits" in args.only:
        hits(args, ctx, goals)
    if "fixed" in args.only:
        fixed(args, ctx, goals)
    if "queries" in args.only:
        queries(args, ctx, goals)
    if "availability" in args.only:
        availability(args, ctx, goals)
    for p in ctx.get("servers", {}).values():
        signal_group(p, signal.SIGTERM)
    if "cold" in args.only:
        cold(args, ctx, goals)
    if "memory" in args.only:
        memory(args, ctx, goals)
    if "sizes" in args.only:
        sizes(args, ctx, goals)
    if "stores" in args.only:
        stores(args, ctx, goals)
    if "overload" in args.only:
        overload(args, ctx, goals)
    if "mssql" in args.only:
        mssql(args, ctx, goals)
    stop_all()
    if "cargo" in args.only:
        cargo_benches(goals)

    print("\ngoals:")
    for name, ok in goals:
        print(f"  [{'ok' if ok else 'MISSED'}] {name}")


def start_targets(args, ctx):
    tmp = ctx["tmp"]
    servers, targets = {}, {}
    peers = bool(args.only & {"hits", "fixed"})  # the other sections measure mango alone
    if peers:
        servers["floor"] = spawn([os.path.join(RELEASE, "examples", "bench_floor"), str(PORTS["floor"])])
        servers["nginx"] = spawn(["nginx", "-c", nginx_conf(tmp), "-g", "daemon off;"])
        targets["floor"] = (f"http://127.0.0.1:{PORTS['floor']}", {})
        targets["nginx"] = (f"http://127.0.0.1:{PORTS['nginx']}", {})
    targets["mango"] = (f"http://127.0.0.1:{PORTS['mango']}", {"X-Store-Id": "bench"})
    if peers and "hits" in args.only and shutil.which("varnishd"):
        servers["varnish"] = spawn(["varnishd", "-F", "-a", f"127.0.0.1:{PORTS['varnish']}", "-f",
                                    varnish_vcl(tmp), "-n", os.path.join(tmp, "varnish"), "-s", "malloc,64m"])
        targets["varnish"] = (f"http://127.0.0.1:{PORTS['varnish']}", {})
    servers["mango"] = spawn([ctx["mango"], "serve"],
                             env=mango_env(PORTS["mango"], os.path.join(tmp, "bench.db"), PORTS["biz"]))
    for name, (base, _) in targets.items():
        wait_ready(base + ("/readyz" if name == "mango" else "/api/v1/services"))
    create_store(PORTS["mango"], "bench", "bench")

    # Warm every cache, and check that every target serves the same catalog.
    sizes_ = {}
    for name, (base, headers) in targets.items():
        for path in PATHS.values():
            for _ in range(3):
                status, body, _ = http("GET", base + path, headers=headers)
                assert status == 200, (name, path, status)
            sizes_[(name, path)] = len(body)
    for path in PATHS.values():
        print(f"bytes {path}: " + ", ".join(f"{n} {sizes_[(n, path)]}" for n in targets))
    ctx["servers"], ctx["targets"] = servers, targets


def hits(args, ctx, goals):
    targets, servers = ctx["targets"], ctx["servers"]
    results = {(n, p): [] for n in targets for p in PATHS}
    for r in range(args.rounds):
        for pname, path in PATHS.items():
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                base, headers = targets[name]
                with alone(name, servers):
                    results[(name, pname)].append(wrk(base + path, headers, args.duration, args.connections))
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    print()
    print(f"{'path':6} {'target':8} {'req/s (median)':>15} {'p99 ms (median)':>16}")
    med = ctx["med"]
    for (name, pname), runs in results.items():
        rps = statistics.median(x[0] for x in runs)
        p99 = statistics.median(x[1] for x in runs)
        med[(name, pname)] = (rps, p99)
    for pname in PATHS:
        for name in targets:
            rps, p99 = med[(name, pname)]
            print(f"{pname:6} {name:8} {rps:15.0f} {p99:16.2f}")
    print()
    for pname in PATHS:
        m, n, f = med[("mango", pname)], med[("nginx", pname)], med[("floor", pname)]
        print(f"{pname}: mango/nginx {m[0] / n[0]:.2f}x req/s, mango/floor {m[0] / f[0]:.2f}x, "
              f"p99 mango {m[1]:.2f} ms vs nginx {n[1]:.2f} ms")
        goals += [(f"{pname}: >= 1.0x nginx req/s", m[0] >= n[0]),
                  (f"{pname}: >= 0.85x floor req/s", m[0] >= 0.85 * f[0]),
                  (f"{pname}: p99 <= nginx", m[1] <= n[1])]


def fixed(args, ctx, goals):
    """Open-loop: the same request rate offered to each target, so queueing shows in the tail
    instead of slowing the load generator down (what closed-loop wrk hides)."""
    targets, servers, med = ctx["targets"], ctx["servers"], ctx["med"]
    print("\nfixed rate (oha, latency from the scheduled send time):")
    print(f"{'path':6} {'load':>5} {'rate':>7} {'target':8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'achieved/s':>11}")
    for pname, path in PATHS.items():
        if ("nginx", pname) not in med:
            with alone("nginx", servers):
                base, headers = targets["nginx"]
                med[("nginx", pname)] = wrk(base + path, headers, args.duration, args.connections)
        nginx_max = med[("nginx", pname)][0]
        for share in (0.5, 0.9):
            rate = nginx_max * share
            row = {}
            for name in ("floor", "nginx", "mango"):
                base, headers = targets[name]
                with alone(name, servers):
                    row[name] = oha(base + path, headers, args.duration, rate, args.connections)
                p50, p99, p999, achieved = row[name]
                print(f"{pname:6} {int(share * 100):4}% {rate:7.0f} {name:8} {p50:8.2f} {p99:8.2f} {p999:9.2f} "
                      f"{achieved:11.0f}", flush=True)
            m, n, f = row["mango"], row["nginx"], row["floor"]
            print(f"{pname} at {int(share * 100)}%: p99 mango/nginx {m[1] / n[1]:.2f}x, mango/floor "
                  f"{m[1] / f[1]:.2f}x; p99.9 mango/nginx {m[2] / n[2]:.2f}x")
            goals.append((f"{pname} at {int(share * 100)}% of nginx max: mango p99 <= nginx", m[1] <= n[1]))


def ratio_runs(args, ctx, paths):
    """Closed-loop req/s and p99 for each (label, path, store) on mango, alone on its core."""
    out = {}
    base = ctx["targets"]["mango"][0]
    for label, path, store in paths:
        for _ in range(3):  # warm: fill, index, variant
            status, body, _ = http("GET", base + path, headers={"X-Store-Id": store})
            assert status == 200, (label, path, status, body[:200])
        runs = []
        for _ in range(args.rounds):
            with alone("mango", ctx["servers"]):
                runs.append(wrk(base + path, {"X-Store-Id": store}, args.duration, args.connections))
        out[label] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), len(body))
    return out


def print_ratios(title, res):
    print(f"\n{title}:")
    item = res["item"][0]
    for label, (rps, p99, size) in res.items():
        print(f"  {label:22} {rps:9.0f} req/s  p99 {p99:6.2f} ms  {size:8} B"
              f"  {rps * size / 1e6:7.1f} MB/s  {rps / item:.2f}x item")
    return item


def queries(args, ctx, goals):
    base = ctx["targets"]["mango"][0]
    create_store(PORTS["mango"], "q1000", "gen_1000")
    pages = {}
    for limit in (12, 50):
        status, body, _ = http("GET", base + f"/api/v1/services?limit={limit}",
                               headers={"X-Store-Id": "q1000"}, timeout=60)
        assert status == 200, (status, body[:200])
        pages[limit] = urllib.parse.quote(json.loads(body)["next_cursor"])
    # A storefront page (12 items) is what the goal is about: the per-request cost of a query
    # beside an item. The 100-item filter and 50-item page show what larger answers cost in
    # bytes (same work per request, more to send).
    res = ratio_runs(args, ctx, [
        ("item", PATHS["item"], "bench"),
        ("filtered, 12 of 100", "/api/v1/services?category_id=cat_3&limit=12", "q1000"),
        ("page 2, 12 items", f"/api/v1/services?limit=12&cursor={pages[12]}", "q1000"),
        ("ids, 3 items", "/api/v1/services?ids=svc_gen_7,svc_gen_500,svc_gen_999", "q1000"),
        ("filtered, all 100", "/api/v1/services?category_id=cat_3", "q1000"),
        ("page 2, 50 items", f"/api/v1/services?limit=50&cursor={pages[50]}", "q1000"),
        ("list, all 1,000", "/api/v1/services", "q1000"),
    ])
    item = print_ratios("list queries on a 1,000-item list (mango, HITs)", res)
    for label in ("filtered, 12 of 100", "page 2, 12 items"):
        goals.append((f"{label} HIT >= 0.8x item HIT", res[label][0] >= 0.8 * item))


def availability(args, ctx, goals):
    res = ratio_runs(args, ctx, [
        ("item", PATHS["item"], "bench"),
        ("availability", "/api/v1/availability?service_id=svc_bench_00&date=2027-06-07", "bench"),
    ])
    item = print_ratios("availability (mango, HITs)", res)
    goals.append(("availability HIT within 10% of item HIT", res["availability"][0] >= 0.9 * item))


def cold(args, ctx, goals):
    mango, tmp = ctx["mango"], ctx["tmp"]
    # 200 concurrent cold misses on a fresh store: one Biz fill.
    spawn([os.path.join(RELEASE, "examples", "bench_biz"), str(PORTS["biz_slow"]), "200"], core=LOAD_CORE)
    wait_ready(f"http://127.0.0.1:{PORTS['biz_slow']}/_calls")
    db = os.path.join(tmp, "cold.db")
    p = spawn([mango, "serve"], env=mango_env(PORTS["mango_mem"], db, PORTS["biz_slow"]))
    wait_ready(f"http://127.0.0.1:{PORTS['mango_mem']}/readyz")
    create_store(PORTS["mango_mem"], "cold", "cold")
    wrk(f"http://127.0.0.1:{PORTS['mango_mem']}/api/v1/services", {"X-Store-Id": "cold"}, 1, 200)
    _, calls, _ = http("GET", f"http://127.0.0.1:{PORTS['biz_slow']}/_calls?business_id=cold")
    calls = int(calls)
    print(f"\n200 concurrent cold misses -> {calls} Biz call(s)")
    goals.append(("200 cold misses -> 1 Biz call", calls == 1))

    # Start to ready, on an existing database.
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
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


def request_many(tmp, port, lua, n, args_of):
    """Runs wrk with `lua` in short chunks, each starting where the last stopped, until n
    requests were made (wrk has no request-count limit)."""
    done = 0
    while done < n:
        out = subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c32", "-d2s", "-s", lua,
                              f"http://127.0.0.1:{port}", "--", *args_of(done)],
                             capture_output=True, text=True, check=True).stdout
        done += int(re.search(r"(\d+) requests in", out).group(1))
    return done


def memory(args, ctx, goals):
    mango, tmp = ctx["mango"], ctx["tmp"]
    n = args.memory_items
    p = spawn([mango, "serve"], env=mango_env(PORTS["mango_mem"], os.path.join(tmp, "mem.db"), PORTS["biz"]))
    wait_ready(f"http://127.0.0.1:{PORTS['mango_mem']}/readyz")
    create_store(PORTS["mango_mem"], "mem", "mem")
    before = rss_mb(p.pid)
    script = write_lua(tmp, "items.lua", """
local i = 0
init = function(args) i = tonumber(args[1]) end
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/services/svc_gen_" .. i, {["X-Store-Id"] = "mem"})
end
""")
    done = request_many(tmp, PORTS["mango_mem"], script, n, lambda d: [str(d)])
    status, body, _ = http("GET", f"http://127.0.0.1:{PORTS['mango_mem']}/admin/v1/stores/mem/cache",
                           headers={"Authorization": f"Bearer {ADMIN}"})
    after = rss_mb(p.pid)
    entries = f" ({body.decode()[:200]})" if status == 200 else ""
    print(f"\nmemory: {after:.0f} MB resident after {done} distinct items were requested "
          f"(was {before:.0f} MB){entries}")
    goals.append((f"{n} cached items resident in < 300 MB", after < 300))
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)


def sizes(args, ctx, goals):
    """Cost as the list grows: one store per size on one instance (business gen_N: N items,
    100 to a Biz page)."""
    mango, tmp = ctx["mango"], ctx["tmp"]
    port = PORTS["mango_mem"]
    p = spawn([mango, "serve"], env=mango_env(port, os.path.join(tmp, "sizes.db"), PORTS["biz"]))
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    base = f"http://127.0.0.1:{port}"
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        slug = f"gen{n}"
        create_store(port, slug, f"gen_{n}")
        before = rss_mb(p.pid)
        t0 = time.perf_counter()
        status, body, headers = http("GET", base + "/api/v1/services", headers={"X-Store-Id": slug}, timeout=120)
        fill_ms = (time.perf_counter() - t0) * 1000
        assert status == 200 and len(json.loads(body)["data"]) == n, (n, status)
        http("GET", base + "/api/v1/services", headers={"X-Store-Id": slug})
        per_item = (rss_mb(p.pid) - before) * 1024 * 1024 / n
        runs = [wrk(base + "/api/v1/services", {"X-Store-Id": slug}, args.duration, args.connections,
                    with_bytes=True) for _ in range(args.rounds)]
        rps = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        per_s = statistics.median(r[2] for r in runs)
        rows.append((n, len(body), rps, per_s, p99, per_item, fill_ms))
    print("\nlist size (mango, list HITs; B/item = resident growth / items once the list is cached, "
          "which is page-granular: read it on the large lists)")
    print(f"{'items':>6} {'bytes':>9} {'req/s':>9} {'MB/s':>8} {'p99 ms':>7} {'B/item':>8} {'cold fill ms':>13}")
    for n, size, rps, per_s, p99, per_item, fill_ms in rows:
        print(f"{n:6} {size:9} {rps:9.0f} {per_s / 2 ** 20:8.0f} {p99:7.2f} {per_item:8.0f} {fill_ms:13.0f}")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)


def stores(args, ctx, goals):
    """Many stores warm on one instance: each its own cache keys for the same business."""
    mango, tmp = ctx["mango"], ctx["tmp"]
    port, n = PORTS["mango_mem"], args.stores
    p = spawn([mango, "serve"], env=mango_env(port, os.path.join(tmp, "stores.db"), PORTS["biz"]))
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    base = f"http://127.0.0.1:{port}"
    start = rss_mb(p.pid)
    t0 = time.perf_counter()
    for i in range(n):
        create_store(port, f"s{i}", "bench")
    created_s = time.perf_counter() - t0
    before = rss_mb(p.pid)
    rotate = write_lua(tmp, "stores.lua", """
local i = 0
local n = 1
init = function(args) i = tonumber(args[1]); n = tonumber(args[2]) end
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/services/svc_bench_00", {["X-Store-Id"] = "s" .. (i % n)})
end
""")
    request_many(tmp, port, rotate, n, lambda d: [str(d), str(n)])
    warm = rss_mb(p.pid)
    one = [wrk(base + PATHS["item"], {"X-Store-Id": "s0"}, args.duration, args.connections)
           for _ in range(args.rounds)]
    many = [wrk(base, {}, args.duration, args.connections, script=rotate, script_args=("0", str(n)))
            for _ in range(args.rounds)]
    one_rps, many_rps = statistics.median(r[0] for r in one), statistics.median(r[0] for r in many)
    print(f"\n{n} stores on one instance: created in {created_s:.1f} s; resident {start:.0f} MB at start, "
          f"{before:.0f} MB with the stores, {warm:.0f} MB with an item cached in each "
          f"({(warm - start) * 1024 / n:.1f} KB per store)")
    print(f"  item HIT, one store {one_rps:.0f} req/s; across {n} stores {many_rps:.0f} req/s "
          f"({many_rps / one_rps:.2f}x: tenant resolution and cache spread)")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)


FLOOD_LUA = """
threads = {}
function setup(thread) table.insert(threads, thread) end
ok, shed, shed_with_retry_after, other = 0, 0, 0, 0
local i = 0
function init(args) i = tonumber(args[1]) * 1000000 end
function request()
  i = i + 1
  return wrk.format("GET", "/api/v1/services/svc_gen_" .. i, {["X-Store-Id"] = "flood"})
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 then
    shed = shed + 1
    if headers["retry-after"] or headers["Retry-After"] then shed_with_retry_after = shed_with_retry_after + 1 end
  else other = other + 1 end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("COUNTS %d %d %d %d\\n", t:get("ok"), t:get("shed"), t:get("shed_with_retry_after"),
                           t:get("other")))
  end
  io.write(string.format("LATENCY_US %d %d %d\\n", latency:percentile(50), latency:percentile(99), latency.max))
  io.write(string.format("ERRORS %d %d %d %d\\n", summary.errors.connect, summary.errors.read,
                         summary.errors.write, summary.errors.timeout))
end
"""


def overload(args, ctx, goals):
    """Past capacity: every connection asks a different cold item of a slow Biz, so nothing can
    be coalesced or served from a cache. What is not served in time must be shed (503 with
    Retry-After), memory must stay bounded, and the first read after the flood must go to Biz
    at once."""
    import resource
    import threading
    mango, tmp = ctx["mango"], ctx["tmp"]
    conns, secs = args.flood_connections, args.flood_seconds
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * conns))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    delay_ms = 500
    spawn([os.path.join(RELEASE, "examples", "bench_biz"), str(PORTS["biz_overload"]), str(delay_ms)],
          core=LOAD_CORE)
    wait_ready(f"http://127.0.0.1:{PORTS['biz_overload']}/_calls")
    env = mango_env(PORTS["mango_overload"], os.path.join(tmp, "flood.db"), PORTS["biz_overload"])
    env["MANGO_MAX_CONNECTIONS"] = str(conns + 1000)
    p = spawn([mango, "serve"], env=env)
    base = f"http://127.0.0.1:{PORTS['mango_overload']}"
    wait_ready(base + "/readyz")
    create_store(PORTS["mango_overload"], "flood", "flood")
    # One item warmed before the flood: a HIT must stay a HIT meanwhile.
    warm = "/api/v1/services/svc_gen_7"
    for _ in range(2):
        http("GET", base + warm, headers={"X-Store-Id": "flood"})
    rss_before = rss_mb(p.pid)
    peak = [rss_before]
    sampling = [True]

    def sample():
        while sampling[0]:
            peak[0] = max(peak[0], rss_mb(p.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    script = write_lua(tmp, "flood.lua", FLOOD_LUA)
    t_flood = time.perf_counter()
    out = subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--timeout", "10s",
                          "-s", script, base, "--", "1"], capture_output=True, text=True, check=True).stdout
    flood_s = time.perf_counter() - t_flood
    # The flood is over: the very next cold read goes to Biz (no remembered failure, no queue).
    t0 = time.perf_counter()
    status_after, _, headers_after = http("GET", base + "/api/v1/services/svc_gen_999999999",
                                          headers={"X-Store-Id": "flood"})
    after_ms = (time.perf_counter() - t0) * 1000
    status_warm, _, headers_warm = http("GET", base + warm, headers={"X-Store-Id": "flood"})
    time.sleep(2)
    sampling[0] = False
    sampler.join()
    rss_after = rss_mb(p.pid)
    ok, shed, with_ra, other = (int(x) for x in re.search(r"COUNTS (\d+) (\d+) (\d+) (\d+)", out).groups())
    p50, p99, worst = (int(x) / 1000 for x in re.search(r"LATENCY_US (\d+) (\d+) (\d+)", out).groups())
    errors = re.search(r"ERRORS (\d+) (\d+) (\d+) (\d+)", out).groups()
    _, calls, _ = http("GET", f"http://127.0.0.1:{PORTS['biz_overload']}/_calls?business_id=flood")
    calls = int(calls)
    total = ok + shed + other
    print(f"\noverload: {conns} connections of distinct cold misses for {flood_s:.1f} s, Biz {delay_ms} ms a call, "
          f"MANGO_BIZ_MAX_CONCURRENCY default (64):")
    print(f"  {total} answers ({total / flood_s:.0f}/s): {ok} 200 from Biz, {shed} 503 shed ({with_ra} with "
          f"Retry-After), {other} other; wrk socket errors connect/read/write/timeout {'/'.join(errors)}")
    print(f"  latency p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms; Biz calls {calls} "
          f"(= {calls * delay_ms / 1000 / flood_s:.0f} in flight on average)")
    print(f"  RSS {rss_before:.0f} MB before, {peak[0]:.0f} MB peak, {rss_after:.0f} MB 2 s after")
    print(f"  first cold read after the flood: {status_after} {headers_after.get('x-cache')} in {after_ms:.0f} ms; "
          f"a warm item during and after: {status_warm} {headers_warm.get('x-cache')}")
    goals += [("overload: only 200 and 503 with Retry-After", other == 0 and with_ra == shed),
              ("overload: Biz calls bounded (<= 64 in flight on average)", calls * delay_ms / 1000 / flood_s <= 64.5),
              ("overload: peak RSS < 256 MB", peak[0] < 256),
              # Up to MANGO_BIZ_MAX_CONCURRENCY calls are still at Biz when the flood stops: the
              # next read waits for one of them (at most a Biz delay), then makes its own.
              ("overload: first read after the flood is a MISS within two Biz delays + 200 ms",
               status_after == 200 and after_ms < 2 * delay_ms + 200)]
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)


def mssql(args, ctx, goals):
    url = os.environ.get("MANGO_BENCH_MSSQL_URL")
    if not url:
        print("\nmssql: skipped (set MANGO_BENCH_MSSQL_URL=mssql://USER:PASS@HOST:PORT/DB?... to run it)")
        return
    mango = ctx["mango"]
    port = PORTS["mango_mem"]
    p = spawn([mango, "serve"], env=mango_env(port, url, PORTS["biz"]))
    wait_ready(f"http://127.0.0.1:{port}/readyz", timeout=120)
    base = f"http://127.0.0.1:{port}"
    slug = f"ms{int(time.time())}"  # a store of its own, so its SQL cache starts empty
    create_store(port, slug, "bench")
    fills = []
    for path in (PATHS["list"], PATHS["item"]):
        t0 = time.perf_counter()
        status, _, headers = http("GET", base + path, headers={"X-Store-Id": slug})
        fills.append(((time.perf_counter() - t0) * 1000, headers.get("x-cache")))
    item = PATHS["item"]
    runs = [wrk(base + item, {"X-Store-Id": slug}, args.duration, args.connections) for _ in range(args.rounds)]
    print(f"\nSQL Server ({url.split('@')[-1].split('?')[0]}): cold list fill {fills[0][0]:.1f} ms "
          f"({fills[0][1]}), then item {fills[1][0]:.1f} ms ({fills[1][1]}); item HIT "
          f"{statistics.median(r[0] for r in runs):.0f} req/s, p99 {statistics.median(r[1] for r in runs):.2f} ms")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    print("webhooks on SQL Server (cargo bench --bench webhooks):", flush=True)
    out = subprocess.run(["cargo", "bench", "--locked", "--bench", "webhooks"], cwd=ROOT,
                         env={**os.environ, "MANGO_BENCH_DATABASE_URL": url},
                         capture_output=True, text=True, check=True).stdout
    print(out.strip())


def cargo_benches(goals):
    print("\nwebhooks (cargo bench --bench webhooks):", flush=True)
    out = subprocess.run(["cargo", "bench", "--locked", "--bench", "webhooks"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    print(out.strip())
    m = re.search(r"([\d.]+) webhooks/s", out)
    if m:
        goals.append(("webhooks >= 5,000/s on SQLite", float(m.group(1)) >= 5000))
    m = re.search(r"p99 ([\d.]+) ms", out.split("fresh", 1)[-1])
    if m:
        goals.append(("webhook -> fresh read p99 < 5 ms", float(m.group(1)) < 5))
    print("\nmicro-benchmarks (cargo bench --bench micro):", flush=True)
    out = subprocess.run(["cargo", "bench", "--locked", "--bench", "micro", "--", "--noplot"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    print("\n".join(l for l in out.splitlines() if "time:" in l or l and not l.startswith(" ")))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
