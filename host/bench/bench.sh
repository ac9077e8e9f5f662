#!/usr/bin/env bash
# Reproduces every figure of BENCHMARKS.md in one run (about 7 minutes):
#
#   host/bench/bench.sh [RUNS] [SECTION...]
#
# RUNS repetitions of each row (default 3); the sections (default all):
# compare, web, paced, idle, tap, criterion, scale, cluster (one chat-server
# vs three on one nats-server -js of the script's own, on a free loopback
# port with a temporary store; skipped, saying why, without nats-server);
# and, only when named,
# versus (OLD_SERVER=path/to/an/older/chat-server: the same unpaced load on
# this one and that one, alternating). Release builds of
# chat-server, tap-server and chat-bench; each row runs RUNS times against a
# fresh server and reports the median (and range); the scale rows run once
# each (10,000 clients take a while to register). All
# traffic is on loopback, except tap-server's, which stays inside a network
# namespace this script creates and deletes (root needed for that row; it is
# skipped, saying why, without). Raw JSON lines go to target/bench/.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${1:-3}
shift || true
sections=${*:-compare web paced idle tap criterion scale cluster}
# want SECTION: whether this run includes it.
want() { [[ " $sections " == *" $1 "* ]]; }
out=target/bench
mkdir -p "$out"
rm -f "$out"/*.jsonl

cargo build --release -q -p host --bin chat-server
cargo build --release -q -p bench --bin chat-bench
if want tap; then cargo build --release -q -p embedded --bin tap-server; fi
server=target/release/chat-server
bench=target/release/chat-bench
pids=()
netns=
nats_store=
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "$netns" ] && ip netns del "$netns" 2>/dev/null || true
    [ -n "$nats_store" ] && rm -rf "$nats_store"
}
trap cleanup EXIT

# start NAME COMMAND...: runs a server whose first stdout line is
# `listening on ADDR`, and sets $addr and $pid.
start() {
    local log="$out/$1.out"
    shift
    "$@" >"$log" 2>/dev/null &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$log" | head -n 1)
        [ -n "$addr" ] && return 0
        sleep 0.05
    done
    echo "bench.sh: $* did not start" >&2
    exit 1
}
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

# row NAME BENCH-ARGS...: one JSON line per run into $out/NAME.jsonl.
row() {
    local name=$1
    shift
    "$bench" "$@" --json --no-progress 2>/dev/null >>"$out/$name.jsonl" || true
}

if want compare; then
echo "==> chat-server vs the tutorial's Python server, unpaced, M=100, S=64"
for c in 10 50 100; do
    for _ in $(seq "$runs"); do
        start server "$server" --listen 127.0.0.1:0 --no-throttle --capacity 11000
        row "server-line-c$c" "$addr" -c "$c" -m 100 -s 64
        row "server-seed-c$c" "$addr" -c "$c" -m 100 -s 64 --dialect seed
        stop
        start python python3 tests/seed/server.py 127.0.0.1 0
        row "python-c$c" "$addr" -c "$c" -m 100 -s 64 --dialect seed
        stop
        start python python3 tests/seed/server.py 127.0.0.1 0
        row "python-window1-c$c" "$addr" -c "$c" -m 100 -s 64 --dialect seed --window 1
        stop
        row "ceiling-c$c" --ceiling -c "$c" -m 100 -s 64 --batch 16
    done
done
fi

if want web; then
echo "==> web clients (WebSocket) vs line clients on one chat-server --web, unpaced, C=100, M=100, S=64"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$runs"); do
    start server "$server" --listen 127.0.0.1:0 --web 127.0.0.1:0 --no-throttle --capacity 11000
    web=
    for _ in $(seq 100); do
        web=$(sed -n 's/^web on //p' "$out/server.out" | head -n 1)
        [ -n "$web" ] && break
        sleep 0.05
    done
    row web-line-c100 "$addr" -c 100 -m 100 -s 64 --server-pid "$pid"
    row web-web-c100 "$web" -c 100 -m 100 -s 64 --dialect web --server-pid "$pid"
    stop
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

if want versus; then
# OLD_SERVER=path/to/an/older/chat-server: the same unpaced C=100 load on
# both, alternating, so both see the same machine.
if [ -z "${OLD_SERVER:-}" ]; then
    echo "bench.sh: the versus section needs OLD_SERVER=path/to/an/older/chat-server" >&2
    exit 2
fi
echo "==> this chat-server vs $OLD_SERVER, unpaced, C=100, M=100, S=64"
for _ in $(seq "$runs"); do
    start server "$server" --listen 127.0.0.1:0 --no-throttle --capacity 11000
    row versus-new "$addr" -c 100 -m 100 -s 64
    stop
    start server "$OLD_SERVER" --listen 127.0.0.1:0 --no-throttle --capacity 11000
    row versus-old "$addr" -c 100 -m 100 -s 64
    stop
done
fi

if want paced; then
echo "==> paced: C=100, 10 messages/s each"
for _ in $(seq "$runs"); do
    start server "$server" --listen 127.0.0.1:0 --no-throttle --capacity 11000
    row paced-server "$addr" -c 100 -m 100 -s 64 --rate 10
    stop
done
fi

if want idle; then
echo "==> 10,000 idle clients"
start server "$server" --listen 127.0.0.1:0 --no-throttle --capacity 10001
row idle "$addr" --idle 10000 --server-pid "$pid" --timeout 600
stop
start server "$server" --listen 127.0.0.1:0 --capacity 1
sleep 0.2
rss_one=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
stop
start server "$server" --listen 127.0.0.1:0 --capacity 10001
sleep 0.2
rss_full=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
stop
echo "{\"rss_kib_capacity_1\": $rss_one, \"rss_kib_capacity_10001\": $rss_full}" >"$out/slots.jsonl"
fi

if want tap; then
echo "==> tap-server (smoltcp over TAP, in a namespace) vs chat-server, C=8"
for _ in $(seq "$runs"); do
    start server "$server" --listen 127.0.0.1:0 --no-throttle --capacity 8
    row server-c8 "$addr" -c 8 -m 100 -s 64
    stop
done
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && [ -e /dev/net/tun ]; then
    netns=chat-bench-$$
    ip netns add "$netns"
    ip netns exec "$netns" ip link set lo up
    ip netns exec "$netns" ip tuntap add name tap0 mode tap
    ip netns exec "$netns" ip link set tap0 up
    ip netns exec "$netns" ip addr add 192.168.69.100/24 dev tap0
    for _ in $(seq "$runs"); do
        start tap ip netns exec "$netns" target/release/tap-server --tap tap0 --address 192.168.69.1/24 \
            --port 55555 --clients 8 --no-throttle
        # The bench runs in the namespace too: its traffic never leaves it.
        ip netns exec "$netns" "$bench" "$addr" -c 8 -m 100 -s 64 --allow-non-loopback --timeout 120 \
            --json --no-progress 2>/dev/null >>"$out/tap-c8.jsonl" || true
        stop
    done
else
    echo "skipped tap-server: needs root, ip and /dev/net/tun"
fi
fi

if want criterion; then
echo "==> criterion: cargo bench -p core"
cargo bench -q -p core --bench room -- --warm-up-time 1 --measurement-time 3 2>/dev/null |
    grep -E '^(fan_out|input)|time:|thrpt:' >"$out/criterion.txt" || true
fi

if want scale; then
# One server size for every row (--capacity 10001), so that only the number
# of connected clients changes. 10 speakers at 2 lines/s each for 30 s: 600
# lines, each to every client. The server's CPU time (utime + stime, 10 ms
# ticks) is read by chat-bench from just before the first line to the end.
echo "==> scale: 100, 1,000 and 10,000 clients, 10 speakers at 2 lines/s each"
# Others' load on the machine moves these figures: say what it was.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in 100 1000 10000; do
    start server "$server" --listen 127.0.0.1:0 --no-throttle --capacity 10001
    row "scale-c$c" "$addr" --clients "$c" --speakers 10 --rate 2 --messages 60 --server-pid "$pid" --timeout 600
    stop
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

if want cluster; then
echo "==> one room: one chat-server vs three on one nats-server, C=300, S=64"
nats=$(type -P nats-server || echo /usr/sbin/nats-server)
if [ ! -x "$nats" ]; then
    echo "  skipped: no nats-server (Debian: apt-get install nats-server)"
else
    # nats_msgs: the broker's messages in and out so far (its monitoring port).
    nats_msgs() {
        python3 -c 'import json,sys,urllib.request; v=json.load(urllib.request.urlopen(sys.argv[1])); print(v["in_msgs"], v["out_msgs"])' \
            "http://127.0.0.1:$nats_http/varz"
    }
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    for run in $(seq "$runs"); do
        start server "$server" --listen 127.0.0.1:0 --no-throttle --capacity 1000
        row cluster-one "$addr" -c 300 -m 100 -s 64 --same-order
        row cluster-one-paced "$addr" -c 300 -m 20 -s 64 --rate 2 --same-order
        stop
        nats_port=$(free_port)
        nats_http=$(free_port)
        nats_store=$(mktemp -d)
        "$nats" -js -a 127.0.0.1 -p "$nats_port" -m "$nats_http" -sd "$nats_store" >"$out/nats.out" 2>&1 &
        nats_pid=$!
        pids+=("$nats_pid")
        for _ in $(seq 100); do
            nats_msgs >/dev/null 2>&1 && break
            sleep 0.05
        done
        addrs=()
        for s in 1 2 3; do
            start "cluster-$s" "$server" --listen 127.0.0.1:0 --no-throttle --capacity 1000 \
                --nats "nats://127.0.0.1:$nats_port" --room "bench$run"
            addrs+=("$addr")
        done
        read -r in0 out0 < <(nats_msgs)
        row cluster-three "${addrs[@]}" -c 300 -m 100 -s 64 --same-order
        read -r in1 out1 < <(nats_msgs)
        echo "{\"lines\": 30000, \"in_msgs\": $((in1 - in0)), \"out_msgs\": $((out1 - out0))}" >>"$out/cluster-nats.jsonl"
        row cluster-three-paced "${addrs[@]}" -c 300 -m 20 -s 64 --rate 2 --same-order
        for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
        pids=()
        rm -rf "$nats_store"
        nats_store=
    done
fi
fi

python3 - "$out" <<'EOF'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
def runs(name):
    p = out / f"{name}.jsonl"
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()] if p.exists() else []
def med(values):
    return statistics.median(values) if values else float("nan")
def rate(name, key="deliveries_per_sec"):
    return med([r[key] for r in runs(name)])
def span(name):
    v = [r["deliveries_per_sec"] for r in runs(name)]
    return f"{med(v)/1e6:.2f}M ({min(v)/1e6:.2f}–{max(v)/1e6:.2f}M)" if v else "n/a"
def errors(name):
    e = [sum(r.get(k, 0) for k in ("lost", "duplicated", "reordered", "misattributed", "torn")) for r in runs(name)]
    return "0" if e and max(e) == 0 else ("n/a" if not e else f"{min(e)}–{max(e)}")
def lat(name):
    r = runs(name)
    if not r: return "n/a"
    p = lambda k: med([x["latency_us"][k] / 1000 for x in r])
    return f"{p('p50'):.2f} / {p('p90'):.2f} / {p('p99'):.2f} / {p('max'):.2f}"
if runs("server-line-c10"):
    print("\n| C | chat-server line | chat-server seed | Python (unpaced) | Python (--window 1) | ceiling 1/write | ceiling 16/write | line ÷ Python | line ÷ ceiling 16 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in (10, 50, 100):
        line, py = rate(f"server-line-c{c}"), rate(f"python-c{c}")
        ceil = [r for r in runs(f"ceiling-c{c}")]
        single = med([r["single"]["deliveries_per_sec"] for r in ceil])
        batched = med([r["batched"]["deliveries_per_sec"] for r in ceil])
        print(f"| {c} | {span(f'server-line-c{c}')}, errors {errors(f'server-line-c{c}')} | {span(f'server-seed-c{c}')}, errors {errors(f'server-seed-c{c}')} "
              f"| {span(f'python-c{c}')}, errors {errors(f'python-c{c}')} | {span(f'python-window1-c{c}')}, errors {errors(f'python-window1-c{c}')} "
              f"| {single/1e6:.2f}M | {batched/1e6:.2f}M | {line/py:.1f}× | {line/batched:.2f}× |")
if runs("web-web-c100"):
    line, web = rate("web-line-c100"), rate("web-web-c100")
    print(f"\nC=100 unpaced on one chat-server --web: line {span('web-line-c100')}, errors {errors('web-line-c100')}; "
          f"web {span('web-web-c100')}, errors {errors('web-web-c100')}; web ÷ line {web/line:.2f}")
    print(f"  latency p50 / p90 / p99 / max (ms): line {lat('web-line-c100')}, web {lat('web-web-c100')}")
    cpu = lambda name, who: med([(r.get(who) or {}).get("ms_per_1000_deliveries", float("nan")) for r in runs(name)])
    print(f"  CPU per 1,000 deliveries (ms): server line {cpu('web-line-c100', 'server_cpu'):.3f}, "
          f"web {cpu('web-web-c100', 'server_cpu'):.3f}; chat-bench line {cpu('web-line-c100', 'bench_cpu'):.3f}, "
          f"web {cpu('web-web-c100', 'bench_cpu'):.3f}")
if runs("versus-new"):
    new, old = rate("versus-new"), rate("versus-old")
    print(f"\nversus, C=100 unpaced: this chat-server {span('versus-new')}, errors {errors('versus-new')}; "
          f"the older one {span('versus-old')}, errors {errors('versus-old')}; this ÷ older {new/old:.2f}")
if runs("paced-server"):
    print(f"\npaced C=100 R=10, latency p50 / p90 / p99 / max (ms): {lat('paced-server')}, errors {errors('paced-server')}")
idle = runs("idle")
if idle:
    r = idle[0]
    print("\nidle:", json.dumps({k: r.get(k) for k in r if k not in ("samples",)}))
slots = runs("slots")
if slots:
    s = slots[0]
    print(f"slots: VmRSS {s['rss_kib_capacity_1']} KiB at capacity 1, {s['rss_kib_capacity_10001']} KiB at 10,001: "
          f"{(s['rss_kib_capacity_10001'] - s['rss_kib_capacity_1']) * 1024 / 10000:.0f} B a slot")
if runs("server-c8"):
    c8, tap = rate("server-c8"), rate("tap-c8")
    print(f"\nC=8: chat-server {span('server-c8')}, tap-server {span('tap-c8')}, errors {errors('tap-c8')}; tap ÷ chat-server {tap/c8:.2f}")
if runs("cluster-one"):
    one, three = rate("cluster-one"), rate("cluster-three")
    order = lambda name: "one order" if all((r.get("same_order") or {}).get("differing", 1) == 0 for r in runs(name)) else "ORDER VIOLATED"
    print(f"\nC=300 unpaced, one room: one chat-server {span('cluster-one')}, errors {errors('cluster-one')}, {order('cluster-one')}; "
          f"three on one nats-server {span('cluster-three')}, errors {errors('cluster-three')}, {order('cluster-three')}; "
          f"three ÷ one {three/one:.2f}")
    print(f"  paced 2 lines/s each, latency p50 / p90 / p99 / max (ms): one {lat('cluster-one-paced')}, errors {errors('cluster-one-paced')}; "
          f"three {lat('cluster-three-paced')}, errors {errors('cluster-three-paced')}, {order('cluster-three-paced')}")
    msgs = runs("cluster-nats")
    if msgs:
        per_in = med([m["in_msgs"] / m["lines"] for m in msgs])
        per_out = med([m["out_msgs"] / m["lines"] for m in msgs])
        print(f"  NATS messages per line (unpaced run, heartbeats included): {per_in:.2f} into the broker, {per_out:.2f} out of it")
crit = out / "criterion.txt"
if crit.exists():
    print("\ncriterion:\n" + crit.read_text())
if runs("scale-c100"):
    print("\n| connected clients | deliveries | p50 | p99 | server CPU | server CPU per 1,000 deliveries | chat-bench CPU | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for c in (100, 1000, 10000):
        r = runs(f"scale-c{c}")
        if not r:
            print(f"| {c:,} | n/a | | | | | | |")
            continue
        r = r[0]
        cpu, own = r.get("server_cpu") or {}, r.get("bench_cpu") or {}
        per = cpu.get("ms_per_1000_deliveries")
        per = f"{per:.3f} ms" if per is not None else "n/a"
        print(f"| {c:,} | {r['deliveries']:,} of {r['expected']:,} | {r['latency_us']['p50'] / 1000:.2f} ms "
              f"| {r['latency_us']['p99'] / 1000:.2f} ms | {cpu.get('ms', float('nan')):,.0f} ms | {per} "
              f"| {own.get('ms', float('nan')):,.0f} ms | {errors(f'scale-c{c}')} |")
EOF
