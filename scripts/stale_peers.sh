#!/usr/bin/env bash
# Stale answers from a per-instance session cache: two instances A and B of one server on one
# private Redis, and in each round, with one client:
#
#   1. POST /login on A                      a new session (cookie `id`)
#   2. GET /cart/items/socks on B            B reads the session (a caching B keeps it): qty 0
#   3. POST /cart/items on A, socks qty 1    A changes the cart: qty 1
#   4. GET /cart/items/socks on B            stale cart when B still answers qty 0
#   5. POST /logout on A                     A deletes the session: 204
#   6. GET /me on B                          stale session when B still answers 200, not 401
#
# and counts the stale answers over ROUNDS rounds. Targets (TARGETS, in this order):
#
#   tower-sessions-moka   bench-peers: tower-sessions 0.14, CachingSessionStore with a moka
#                         cache of CACHE_SIZE sessions per instance in front of the Redis store
#   tower-sessions        bench-peers: the same without the cache (the control: no stale answer)
#   shop-cache            the example shop with SESSION_CACHE=CACHE_SIZE, both instances with
#                         the same SESSION_KEYS
#
# Usage: scripts/stale_peers.sh
# Settings (environment):
#   TARGETS="tower-sessions-moka tower-sessions shop-cache"   ROUNDS=100 (1..1000)
#   CACHE_SIZE=10000   MAX_SECONDS=120 (per target: rounds stop there, the count says how many
#   ran)   SKIP_BUILD=1 (use the release binaries already built)
# Every request has a 5 s limit. Exits 1 when an answer was neither the fresh nor the stale
# one (the counts are then not meaningful). Needs: cargo, redis-server, curl. Everything
# listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "stale_peers: $*" >&2
    exit 1
}

TARGETS=${TARGETS:-tower-sessions-moka tower-sessions shop-cache}
ROUNDS=${ROUNDS:-100}
CACHE_SIZE=${CACHE_SIZE:-10000}
MAX_SECONDS=${MAX_SECONDS:-120}
SKIP_BUILD=${SKIP_BUILD:-0}
[[ "$ROUNDS" =~ ^[1-9][0-9]{0,2}$|^1000$ ]] || die "ROUNDS must be 1 to 1000"
[[ "$CACHE_SIZE" =~ ^[1-9][0-9]{0,5}$ ]] || die "CACHE_SIZE must be 1 to 999999"
[[ "$MAX_SECONDS" =~ ^[1-9][0-9]{0,2}$ ]] || die "MAX_SECONDS must be 1 to 999"
for target in $TARGETS; do
    case "$target" in
        tower-sessions-moka | tower-sessions | shop-cache) ;;
        *) die "unknown target $target (tower-sessions-moka, tower-sessions, shop-cache)" ;;
    esac
done
for tool in cargo redis-server curl; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/stale_peers.XXXXXX")
script=stale_peers
# shellcheck source=scripts/processes.sh
. scripts/processes.sh

target_dir=${CARGO_TARGET_DIR:-target}
if [ "$SKIP_BUILD" != 1 ]; then
    echo "building (release): bench-peers$([[ " $TARGETS " == *" shop-cache "* ]] && echo ", shop")" >&2
    cargo build --release -p bench-peers >&2
    [[ " $TARGETS " != *" shop-cache "* ]] || cargo build --release -p shop >&2
fi
shop_bin=$target_dir/release/shop
peers_bin=$target_dir/release/bench-peers

# --- private Redis ---------------------------------------------------------------------------
for attempt in 1 2 3; do
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$work" --logfile "$work/redis.log" &
    redis_pid=$!
    pids+=("$redis_pid")
    wait_port "$redis_port" "$redis_pid" redis-server "$work/redis.log" && break
    stop "$redis_pid"
    [ "$attempt" -lt 3 ] || die "redis-server did not start (3 attempts)"
done
redis_url="redis://127.0.0.1:$redis_port"
session_keys=$(head -c 32 /dev/urandom | base64)

# start TARGET NAME: starts one instance of TARGET on a free port, in $port and $server_pid.
start() {
    local target=$1 name=$2 log=$work/$1-$2.log attempt
    for attempt in 1 2 3; do
        port=$(free_port)
        case "$target" in
            tower-sessions | tower-sessions-moka)
                env MOKA_CAPACITY="$CACHE_SIZE" "$peers_bin" "$target" \
                    --redis-url "$redis_url" --port "$port" >"$log" 2>&1 &
                ;;
            shop-cache)
                env REDIS_URL="$redis_url" SESSION_KEYS="$session_keys" \
                    SESSION_CACHE="$CACHE_SIZE" COOKIE_SECURE=false PORT="$port" \
                    INSTANCE="$name" RUST_LOG=warn "$shop_bin" >"$log" 2>&1 &
                ;;
        esac
        server_pid=$!
        pids+=("$server_pid")
        wait_port "$port" "$server_pid" "$target $name" "$log" && return
        stop "$server_pid"
    done
    die "$target $name did not start (3 attempts)"
}

# request METHOD URL [CURL_ARGS...]: one request with the round's cookie; its status in
# $code, its body in $work/body.
request() {
    local method=$1 url=$2
    shift 2
    code=$(curl -sS --max-time 5 -o "$work/body" -w '%{http_code}' -X "$method" \
        -H "Cookie: id=$cookie" "$@" "$url") || code=failed
}

# qty: the `qty` of the JSON answer in $work/body, or "?".
qty() {
    sed -n 's/.*"qty":\([0-9][0-9]*\).*/\1/p' "$work/body" | grep . || echo '?'
}

# unexpected STEP: counts an answer that is neither fresh nor stale, shows the first three.
unexpected() {
    unexpected=$((unexpected + 1))
    [ "$unexpected" -gt 3 ] ||
        echo "  round $round, $1: $code $(head -c 200 "$work/body")" >&2
}

results=()
for target in $TARGETS; do
    start "$target" A
    pid_a=$server_pid a="http://127.0.0.1:$port"
    start "$target" B
    pid_b=$server_pid b="http://127.0.0.1:$port"
    echo "$target: A on $a, B on $b, $ROUNDS rounds (at most ${MAX_SECONDS}s)" >&2
    stale_cart=0 stale_logout=0 unexpected=0 rounds=0
    deadline=$((SECONDS + MAX_SECONDS))
    for round in $(seq 1 "$ROUNDS"); do
        [ "$SECONDS" -lt "$deadline" ] || {
            echo "  stopped after ${MAX_SECONDS}s" >&2
            break
        }
        # 1. Log in on A.
        headers=$(curl -sS --max-time 5 -D - -o "$work/body" -X POST \
            -H 'Content-Type: application/json' --data '{"user":"stale"}' "$a/login") ||
            die "POST /login on A failed"
        cookie=$(printf '%s\n' "$headers" | tr -d '\r' |
            sed -n 's/^[Ss][Ee][Tt]-[Cc][Oo][Oo][Kk][Ii][Ee]: *id=\([^;]*\).*/\1/p' | head -n 1)
        [ -n "$cookie" ] || die "POST /login on A set no id cookie: $headers"
        rounds=$round
        # 2. B reads the cart (and may cache the session).
        request GET "$b/cart/items/socks"
        [ "$code" = 200 ] && [ "$(qty)" = 0 ] || unexpected "first read on B"
        # 3. A changes the cart.
        request POST "$a/cart/items" -H 'Content-Type: application/json' \
            --data '{"sku":"socks","qty":1}'
        [ "$code" = 200 ] && [ "$(qty)" = 1 ] || unexpected "cart add on A"
        # 4. B reads the cart again.
        request GET "$b/cart/items/socks"
        if [ "$code" = 200 ] && [ "$(qty)" = 1 ]; then
            :
        elif [ "$code" = 200 ] && [ "$(qty)" = 0 ]; then
            stale_cart=$((stale_cart + 1))
        else
            unexpected "second read on B"
        fi
        # 5. A logs out.
        request POST "$a/logout"
        [ "$code" = 204 ] || unexpected "logout on A"
        # 6. B after the logout.
        request GET "$b/me"
        case "$code" in
            401) ;;
            200) stale_logout=$((stale_logout + 1)) ;;
            *) unexpected "read on B after the logout" ;;
        esac
    done
    stop "$pid_a"
    stop "$pid_b"
    results+=("$target|$rounds|$stale_cart|$stale_logout|$unexpected")
done

echo
echo "Two instances per target on one Redis, CACHE_SIZE=$CACHE_SIZE; per round: login on A, read" \
    "on B, cart add on A, read on B, logout on A, read on B."
echo
echo "| target | rounds | stale cart on B (qty 0 after A's add) | logged-out session served by B (200 after A's logout) | unexpected answers |"
echo "|---|---:|---:|---:|---:|"
status=0
for result in "${results[@]}"; do
    IFS='|' read -r target rounds stale_cart stale_logout unexpected <<<"$result"
    case "$target" in
        tower-sessions-moka) target="tower-sessions + CachingSessionStore (moka)" ;;
        shop-cache) target="shop, SESSION_CACHE=$CACHE_SIZE" ;;
    esac
    echo "| $target | $rounds | $stale_cart | $stale_logout | $unexpected |"
    [ "$unexpected" = 0 ] || status=1
done
[ "$status" = 0 ] || echo "WARNING: some answers were neither fresh nor stale: see above." >&2
exit "$status"
