#!/usr/bin/env bash
# Where one request's CPU goes, for one target of scripts/loadtest.sh under wrk: the
# server's user and system time, Redis's, and wrk's own, per request; what Redis ran
# (INFO commandstats) and, for the shop, its cache's counts (GET /metrics).
#
#   TARGET=shop-cache|shop-nocache|tower-sessions  ROUTE=post|me  scripts/cpu_breakdown.sh
#
# Pinned like scripts/loadtest.sh: the server on CPU 0, wrk and a private redis-server (free
# loopback port, no persistence) on CPU 1; wrk `-t1 -c32 -d8s --latency` on one session
# cookie after a 2 s warm-up. Needs the release binaries (`cargo build --release -p shop -p
# bench-peers`). Every process it starts is stopped by PID on exit.
set -euo pipefail

TARGET=${TARGET:-shop-cache}
ROUTE=${ROUTE:-post}
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}
cpu_us() { # user and system time of a process, in microseconds
    awk -v tck="$(getconf CLK_TCK)" '{ printf "%d %d\n", $14 * 1e6 / tck, $15 * 1e6 / tck }' "/proc/$1/stat"
}
redis_cpu_us() {
    redis-cli -p "$redis_port" info cpu |
        awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { printf "%d\n", t * 1e6 }'
}

redis_port=$(free_port)
taskset -c 1 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
wait_port "$redis_port"
redis_url=redis://127.0.0.1:$redis_port

port=$(free_port)
keys=$(head -c 32 /dev/urandom | base64)
shop=(env REDIS_URL="$redis_url" SESSION_KEYS="$keys" COOKIE_SECURE=false PORT="$port" RUST_LOG=warn)
case "$TARGET" in
    shop-cache) taskset -c 0 "${shop[@]}" SESSION_CACHE=10000 target/release/shop >"$work/server.log" 2>&1 & ;;
    shop-nocache) taskset -c 0 "${shop[@]}" SESSION_CACHE=0 target/release/shop >"$work/server.log" 2>&1 & ;;
    tower-sessions)
        taskset -c 0 target/release/bench-peers tower-sessions --redis-url "$redis_url" \
            --port "$port" >"$work/server.log" 2>&1 &
        ;;
    *) echo "unknown TARGET $TARGET" >&2; exit 2 ;;
esac
server=$!
pids+=("$server")
wait_port "$port"

cookie=$(curl -sS --max-time 5 -D - -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data '{"user":"bench"}' "http://127.0.0.1:$port/login" | tr -d '\r' |
    sed -n 's/^[Ss]et-[Cc]ookie: *id=\([^;]*\).*/\1/p' | head -n 1)
[ -n "$cookie" ] || { echo "POST /login set no cookie" >&2; exit 1; }
cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"sku":"socks","qty":1}'
wrk.headers["Content-Type"] = "application/json"
EOF
case "$ROUTE" in
    post) url=http://127.0.0.1:$port/cart/items script=(-s "$work/post.lua") ;;
    me) url=http://127.0.0.1:$port/me script=() ;;
    *) echo "unknown ROUTE $ROUTE" >&2; exit 2 ;;
esac
load() { # load SECONDS OUT
    timeout $(($1 + 10)) /usr/bin/time -f "%U %S" -o "$2.time" taskset -c 1 \
        wrk -t1 -c32 "-d$1s" --latency -H "Cookie: id=$cookie" "${script[@]}" "$url" >"$2"
}

load 2 "$work/warmup"
redis-cli -p "$redis_port" config resetstat >/dev/null
read -r user0 sys0 < <(cpu_us "$server")
redis0=$(redis_cpu_us)
load 8 "$work/wrk"
read -r user1 sys1 < <(cpu_us "$server")
redis1=$(redis_cpu_us)

requests=$(awk '/requests in/ { print $1 }' "$work/wrk")
per() { awk -v t="$1" -v n="$requests" 'BEGIN { printf "%.1f", t / n }'; }
echo "$TARGET $ROUTE: $(awk '/Requests\/sec/ { print $2 }' "$work/wrk") requests/s," \
    "p50 $(awk '/^ +50%/ { print $2 }' "$work/wrk"), p99 $(awk '/^ +99%/ { print $2 }' "$work/wrk")," \
    "$(grep -c 'Non-2xx' "$work/wrk" || true) lines of non-2xx"
echo "per request: server user $(per $((user1 - user0))) µs, system $(per $((sys1 - sys0))) µs;" \
    "Redis $(per $((redis1 - redis0))) µs;" \
    "wrk $(awk -v n="$requests" '{ printf "%.1f", ($1 + $2) * 1e6 / n }' "$work/wrk.time") µs"
echo "Redis commands (INFO commandstats, the measured run):"
redis-cli -p "$redis_port" info commandstats | grep '^cmdstat' | cut -d, -f1-3 | sed 's/^/  /'
if [[ "$TARGET" == shop-* ]]; then
    sleep 1.1 # the shop publishes its cache's counts every second
    echo "cache (since start, warm-up included):"
    curl -sS --max-time 5 "http://127.0.0.1:$port/metrics" | grep '^session_cache' | sed 's/^/  /' || true
fi
