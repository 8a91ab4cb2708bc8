#!/usr/bin/env bash
# User-space instructions and heap allocations per request, counted by callgrind, for the
# shop and the peers of scripts/loadtest.sh side by side in one run:
#
#   no-io                 bench-peers: axum answering GET /me with no session and no I/O
#   tower-sessions        bench-peers: the shop's routes on tower-sessions + its Redis store
#   tower-sessions-moka   the same with a per-instance moka cache in front of Redis
#   shop-cache            the shop on RedisStore with its coherent cache (SESSION_CACHE)
#   shop-token            the shop in token mode, no Redis (no revocations)
#   shop-token-rev        the shop in token mode, revocations in Redis read through the cache
#                         (not in the default TARGETS)
#
# Each server runs alone under `valgrind --tool=callgrind`, pinned to one CPU (so tokio
# runs one worker, as in the wrk runs), on a private redis-server this script starts. It
# logs in once, sends WARMUP requests of each route, then per route: zeroes callgrind's
# counters (callgrind_control -z), sends REQUESTS requests over one keep-alive connection
# (curl, one request after the other; every answer must be 200), and dumps the counters
# (callgrind_control -d). callgrind handles a command when the server next runs, at most a
# few thousand basic blocks into the request that wakes it, so a measurement's edges are
# off by less than one request in REQUESTS. Background work of the server (the coherent
# cache's heartbeat every 250 ms) is counted too, as it is part of what the server spends.
#
# Printed per route and target:
#   instructions / request   every instruction the server ran in user space (all threads)
#                            between the zero and the dump, divided by REQUESTS, with
#                            SHA-256 at its SHA-NI cost (below). Kernel work is not counted.
#   allocations / request    calls to malloc, calloc, realloc, posix_memalign, aligned_alloc
#                            and memalign in that window (callgrind's call counts), divided by
#                            REQUESTS; a realloc counts as one allocation.
#   SHA-256 blocks / request how many 64-byte blocks sha2 compressed (HMAC, hashed IDs).
#
# The SHA-NI correction: valgrind's CPU does not have the SHA extensions, and it clears their
# CPUID bit, so under callgrind sha2 takes its software compression (about 1,500
# instructions a block) where this machine natively runs its SHA-NI one (about 130). The
# script measures the software path's cost under callgrind with `bench-peers sha256-cost`
# (digests whose compression calls and blocks are known: per call c and per block b from two
# runs), counts the SHA-NI path's instructions in the binary itself with objdump (the
# straight-line loop body of `sha2::sha256::x86::digest_blocks` per block, the rest of it
# and compress256's dispatch per call), and for each measurement replaces what the calls to
# `sha2::sha256::compress256` cost (callgrind's inclusive cost of those calls, from which
# their block count follows) by what the same calls and blocks cost with SHA-NI. The raw
# count is printed beside the corrected one.
#
# Usage: scripts/instructions.sh
# Settings (environment):
#   REQUESTS=2000 WARMUP=200   requests measured per route, and sent before measuring
#   TARGETS="no-io tower-sessions tower-sessions-moka shop-cache shop-token"
#   SERVER_CPU=0   the CPU the server is pinned to (taskset; ignored without it)
#   SKIP_BUILD=1   use the release binaries already built
#   KEEP=DIR       keep the callgrind files in DIR (for callgrind_annotate)
# Needs: cargo, valgrind (callgrind_control), redis-server, curl, objdump, awk.
# Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "instructions: $*" >&2
    exit 1
}

REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-200}
TARGETS=${TARGETS:-no-io tower-sessions tower-sessions-moka shop-cache shop-token}
SERVER_CPU=${SERVER_CPU:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-}
[[ "$REQUESTS" =~ ^[1-9][0-9]{0,4}$ ]] || die "REQUESTS must be 1 to 99999"
[[ "$WARMUP" =~ ^[0-9]{1,4}$ ]] || die "WARMUP must be 0 to 9999"

for tool in cargo valgrind callgrind_control redis-server curl objdump awk; do
    command -v "$tool" >/dev/null ||
        die "$tool is not installed (Debian: apt-get install valgrind redis-server curl binutils; .ci/run installs them)"
done

pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin=(taskset -c "$SERVER_CPU")
fi

started=$(date -u '+%Y-%m-%d %H:%M UTC')
work=$(mktemp -d "${TMPDIR:-/tmp}/instructions.XXXXXX")
script=instructions
# shellcheck source=scripts/processes.sh
. scripts/processes.sh

# --- build -----------------------------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-target}
if [ "$SKIP_BUILD" != 1 ]; then
    echo "building (release): shop, bench-peers" >&2
    cargo build --release -p shop -p bench-peers >&2
fi
shop_bin=$target_dir/release/shop
peers_bin=$target_dir/release/bench-peers
[ -x "$shop_bin" ] || die "$shop_bin is missing (run without SKIP_BUILD=1)"
[ -x "$peers_bin" ] || die "$peers_bin is missing (run without SKIP_BUILD=1)"

# --- callgrind files -------------------------------------------------------------------------
# cg_sums FILE: "TOTAL ALLOCATIONS SHA_CALLS SHA_INCLUSIVE" from one callgrind output file
# (the only event is Ir). Function names are compressed: `fn=(id) name` or `cfn=(id) name`
# defines id, `cfn=(id)` refers to it; a `calls=N ...` line is followed by the line of the
# calls' inclusive cost.
cg_sums() {
    awk '
        function callee(line,   id, rest) {
            rest = substr(line, index(line, "=") + 1)
            if (rest ~ /^\(/) {
                id = substr(rest, 2, index(rest, ")") - 2)
                rest = substr(rest, index(rest, ")") + 1)
                sub(/^ /, "", rest)
                if (rest != "") names[id] = rest
                return names[id]
            }
            return rest
        }
        /^fn=/ { callee($0); next }
        /^cfn=/ { current = callee($0); next }
        /^calls=/ {
            split(substr($0, 7), c, " ")
            count = c[1]
            getline
            cost = $2
            if (current ~ /^(malloc|calloc|realloc|posix_memalign|aligned_alloc|memalign)$/) allocs += count
            if (current ~ /^sha2::sha256::compress256/) { sha_calls += count; sha_cost += cost }
            next
        }
        /^summary:/ { total = $2 }
        /^totals:/ { if (total == "") total = $2 }
        END { printf "%d %d %d %d\n", total, allocs, sha_calls, sha_cost }
    ' "$1"
}

# --- the SHA-NI correction: software cost under callgrind, SHA-NI cost from the binary -------
echo "calibrating sha2's software compression under callgrind" >&2
calibrate() {
    local kind=$1 out=$work/sha256-$1.cg
    valgrind --tool=callgrind --callgrind-out-file="$out" "$peers_bin" sha256-cost "$kind" 2000 \
        >/dev/null 2>"$work/sha256-$kind.log" || die "bench-peers sha256-cost failed: $(tail -n 5 "$work/sha256-$kind.log")"
    cg_sums "$out"
}
read -r _ _ short_calls short_cost < <(calibrate SHORT)
read -r _ _ long_calls long_cost < <(calibrate LONG)
# SHORT: 2000 calls of 1 block; LONG: 4000 calls, 18000 blocks.
[ "$short_calls" = 2000 ] && [ "$long_calls" = 4000 ] ||
    die "sha256-cost made $short_calls and $long_calls compression calls, expected 2000 and 4000"
# per digest: SHORT = c + b, LONG = 2c + 9b
soft_block=$(awk -v s="$short_cost" -v l="$long_cost" 'BEGIN { printf "%.2f", (l / 2000 - 2 * s / 2000) / 7 }')
soft_call=$(awk -v s="$short_cost" -v b="$soft_block" 'BEGIN { printf "%.2f", s / 2000 - b }')

# Instructions of one function in a binary, with objdump; "LOOP REST": the body of its one
# backward jump (the loop over blocks) and every other instruction.
shani_counts() {
    objdump -d --no-show-raw-insn -C "$1" | awk '
        /^[0-9a-f]+ <.*>:$/ { inside = ($0 ~ /<sha2::sha256::x86::digest_blocks/); next }
        inside && /^ *[0-9a-f]+:\t/ {
            addr = strtonum("0x" substr($1, 1, length($1) - 1))
            n++
            at[n] = addr
            if ($2 ~ /^j/ && $3 ~ /^[0-9a-f]+$/) {
                target = strtonum("0x" $3)
                if (target < addr) { back_from = n; back_to = target }
            }
        }
        inside && /^$/ { inside = 0 }
        END {
            if (n == 0 || back_from == "") { print "0 0"; exit }
            loop = 0
            for (i = 1; i <= n; i++) if (at[i] >= back_to && i <= back_from) loop++
            print loop, n - loop
        }'
}
# What compress256 runs on the SHA-NI path around digest_blocks: its instructions up to its
# first branch (the feature check), and from that branch's target to the jump or call to
# digest_blocks. Binaries can hold several sha2 versions (PostgreSQL's client brings 0.11,
# whose compress256 calls x86_sha::compress); the one measured is the copy that reaches
# digest_blocks.
dispatch_count() {
    objdump -d --no-show-raw-insn -C "$1" | awk '
        /^[0-9a-f]+ <.*>:$/ {
            inside = ($0 ~ /<sha2::sha256::compress256>:/)
            if (inside) { n = 0; first = "" }
            next
        }
        inside && /^ *[0-9a-f]+:\t/ {
            n++
            addr[n] = strtonum("0x" substr($1, 1, length($1) - 1))
            text[n] = $0
            if (first == "" && $2 ~ /^j/ && $3 ~ /^[0-9a-f]+$/) { first = n; target = strtonum("0x" $3) }
        }
        inside && /^$/ {
            inside = 0
            # Reads on to the end (no early exit: objdump would die of SIGPIPE).
            if (first == "" || found) next
            count = first
            for (i = 1; i <= n; i++) {
                if (addr[i] < target) continue
                count++
                if (text[i] ~ /digest_blocks/) { print count; found = 1; break }
            }
        }
        END { if (!found) print 0 }'
}
declare -A ni_block ni_call
for binary in "$shop_bin" "$peers_bin"; do
    read -r loop rest < <(shani_counts "$binary")
    dispatch=$(dispatch_count "$binary")
    ni_block[$binary]=$loop
    ni_call[$binary]=$((rest + dispatch))
done
[ "${ni_block[$shop_bin]}" -gt 0 ] ||
    die "no sha2::sha256::x86::digest_blocks loop found in $shop_bin (objdump -d -C)"

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

# --- servers under callgrind -----------------------------------------------------------------
# start_server TARGET PORT: TARGET under callgrind on PORT; pid in $server_pid, binary in
# $server_bin.
start_server() {
    local target=$1 port=$2 log=$work/$1.log vars command
    case "$target" in
        no-io) vars=(PORT="$port") command=("$peers_bin" no-io) ;;
        tower-sessions | tower-sessions-moka)
            vars=(REDIS_URL="$redis_url" PORT="$port" MOKA_CAPACITY=10000)
            command=("$peers_bin" "$target")
            ;;
        shop-cache | shop-token | shop-token-rev)
            vars=(SESSION_KEYS="$session_keys" SESSION_CACHE=10000 COOKIE_SECURE=false
                PORT="$port" RUST_LOG=warn)
            [ "$target" = shop-token ] || vars+=(REDIS_URL="$redis_url")
            [ "$target" = shop-cache ] || vars+=(SESSION_MODE=token)
            command=("$shop_bin")
            ;;
        *) die "unknown target $target" ;;
    esac
    server_bin=${command[0]}
    # taskset, env and valgrind exec: $! is the server's pid.
    "${pin[@]}" env "${vars[@]}" valgrind --tool=callgrind "--callgrind-out-file=$work/$target.cg" \
        "${command[@]}" >"$log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
}

# requests PORT ROUTE COUNT COOKIE: COUNT requests of ROUTE over one keep-alive connection;
# fails unless every one answered 200.
requests() {
    local port=$1 route=$2 count=$3 cookie=$4 config=$work/curl.conf ok
    local path=/me data=()
    [ "$route" = "GET /me" ] || { path=/cart/items data=(-H 'Content-Type: application/json' --data '{"sku":"socks","qty":1}'); }
    [ "$count" -gt 0 ] || return 0
    : >"$config"
    for _ in $(seq 1 "$count"); do
        printf 'url = "http://127.0.0.1:%s%s"\noutput = "/dev/null"\n' "$port" "$path" >>"$config"
    done
    local cookie_header=()
    [ -z "$cookie" ] || cookie_header=(-H "Cookie: id=$cookie")
    ok=$(curl -sS --max-time 600 --config "$config" "${cookie_header[@]}" "${data[@]}" \
        -w '%{http_code}\n' | grep -c '^200$' || true)
    [ "$ok" = "$count" ] || die "$route on port $port: $ok of $count requests answered 200"
}

login() {
    local port=$1 headers cookie
    headers=$(curl -sS --max-time 60 -D - -o /dev/null -X POST -H 'Content-Type: application/json' \
        --data '{"user":"bench"}' "http://127.0.0.1:$port/login") || die "POST /login on port $port failed"
    cookie=$(printf '%s\n' "$headers" | tr -d '\r' |
        sed -n 's/^[Ss][Ee][Tt]-[Cc][Oo][Oo][Kk][Ii][Ee]: *id=\([^;]*\).*/\1/p' | head -n 1)
    [ -n "$cookie" ] || die "POST /login on port $port set no id cookie"
    echo "$cookie"
}

# callgrind PID COMMAND: one callgrind_control command, answered once the server next runs:
# in the background, while the next request wakes it.
control() {
    callgrind_control "$2" "$1" >"$work/control.log" 2>&1 &
    control_pid=$!
    pids+=("$control_pid")
    sleep 0.3
}
control_done() {
    local status=0
    wait "$control_pid" || status=$?
    forget "$control_pid"
    [ "$status" = 0 ] || die "callgrind_control failed: $(cat "$work/control.log")"
}

results=$work/results.tsv
: >"$results"
for target in $TARGETS; do
    routes=("GET /me" "POST /cart/items")
    [ "$target" != no-io ] || routes=("GET /me")
    port=$(free_port)
    echo "$target: starting under callgrind on port $port" >&2
    start_server "$target" "$port"
    pid=$server_pid
    for _ in $(seq 1 6); do
        wait_port "$port" "$pid" "$target" "$work/$target.log" && break
    done
    port_open "$port" || die "$target did not listen on $port"
    # valgrind runs the binary in the same process: $pid is the server's.
    cookie=""
    [ "$target" = no-io ] || cookie=$(login "$port")
    for route in "${routes[@]}"; do
        requests "$port" "$route" "$WARMUP" "$cookie"
    done
    for route in "${routes[@]}"; do
        echo "$target: $route, $REQUESTS requests" >&2
        control "$pid" -z
        # The zero is handled as the first request wakes the server: send it alone first.
        requests "$port" "$route" 1 "$cookie"
        control_done
        requests "$port" "$route" $((REQUESTS - 1)) "$cookie"
        before=$(ls "$work/$target.cg"* 2>/dev/null | wc -l)
        control "$pid" -d
        # The dump is handled as the next request wakes it, before that request's work.
        requests "$port" "$route" 1 "$cookie"
        control_done
        dump=$(ls -t "$work/$target.cg"* | head -n 1)
        [ "$(ls "$work/$target.cg"* | wc -l)" -gt "$before" ] || die "no callgrind dump for $target"
        read -r total allocs sha_calls sha_cost < <(cg_sums "$dump")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$route" "$total" "$allocs" "$sha_calls" \
            "$sha_cost" "$server_bin" >>"$results"
        [ -z "$KEEP" ] || { mkdir -p "$KEEP"; cp "$dump" "$KEEP/$target-${route//[ \/]/_}.cg"; }
    done
    stop "$pid"
done

# --- report ----------------------------------------------------------------------------------
echo
echo "### Instructions per request, run of $started"
echo
echo "Command: \`REQUESTS=$REQUESTS WARMUP=$WARMUP scripts/instructions.sh\`; $(git describe --always --dirty 2>/dev/null || echo '?')," \
    "$(rustc --version | awk '{ print $1, $2 }'), $(valgrind --version)."
echo "SHA-256 under callgrind (software): $soft_call per call + $soft_block per block;" \
    "with SHA-NI (objdump of the shop): ${ni_call[$shop_bin]} per call + ${ni_block[$shop_bin]} per block."
echo
echo "| target | route | instructions / request | raw (software SHA-256) | allocations / request | SHA-256 blocks / request |"
echo "|---|---|---:|---:|---:|---:|"
while IFS=$'\t' read -r target route total allocs sha_calls sha_cost binary; do
    awk -v t="$target" -v r="$route" -v total="$total" -v allocs="$allocs" -v calls="$sha_calls" \
        -v cost="$sha_cost" -v sc="$soft_call" -v sb="$soft_block" -v nc="${ni_call[$binary]}" \
        -v nb="${ni_block[$binary]}" -v n="$REQUESTS" 'BEGIN {
            blocks = calls > 0 ? (cost - calls * sc) / sb : 0
            corrected = total - cost + calls * nc + blocks * nb
            printf "| %s | %s | %.0f | %.0f | %.1f | %.1f |\n", t, r, corrected / n, total / n,
                allocs / n, blocks / n }'
done <"$results"
