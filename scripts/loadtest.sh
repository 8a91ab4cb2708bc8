#!/usr/bin/env bash
# Load tests against peers, side by side in one run, on this machine and one private Redis:
#
#   no-I/O          bench-peers: axum answering the shop's GET /me JSON, no I/O at all: the
#                   HTTP limit (GET /me)
#   baseline        bench-peers: axum, one HGETALL of a fixed key, no cookie (GET /me)
#   tower-sessions  bench-peers: the shop's routes on tower-sessions 0.14 + its Redis store
#                   (GET /me, POST /cart/items, as every row below)
#   tower-sessions + moka   the same with CachingSessionStore: a per-instance moka cache of
#                   CACHE_SIZE sessions in front of the Redis store
#   shop, SESSION_CACHE=0   the example shop on tower-stateless + RedisStore, no session cache
#   shop, SESSION_CACHE=N   the same with its per-instance session cache of N = CACHE_SIZE
#   shop, SESSION_MODE=token   token mode: the session sealed in its cookie, revocations in
#                   Redis read through the coherent cache; and the same with no Redis at all
#                   (no revocations); TOKEN_ROWS=0 leaves both out
#                   sessions
#   shop on PostgreSQL    the shop with DATABASE_URL (PostgresStore) on a private PostgreSQL
#   tower-sessions (sqlx PostgreSQL)   bench-peers: the shop's routes on tower-sessions 0.14 +
#                   tower-sessions-sqlx-store 0.15's PostgresStore, on the same PostgreSQL
#   tower-sessions (always_save)   tower-sessions writing the session back after every request
#                   (how tower-sessions slides the expiry on reads); GET /me only; optional
#
# Each server runs alone (started, logged in once, warmed up, measured, stopped) with the same
# wrk settings; the table prints requests/s, p50 and p99 latency, the server's and Redis's CPU
# time per request, and the ratios the performance issue asks for.
#
# What a per-instance cache serves stale across two instances: scripts/stale_peers.sh.
#
# Usage: scripts/loadtest.sh            (full: 10 s per measurement, 2.5 min a round when quiet)
#        DURATION=3s WARMUP=1s scripts/loadtest.sh   (smoke run)
# Settings (environment):
#   DURATION=10s  WARMUP=2s  THREADS=1  CONNECTIONS=32   wrk settings, the same for every row
#   ROUNDS=1      repeat every measurement (1..9), servers restarted each round; median shown
#   SERVER_CPU=0  CLIENT_CPU=1  REDIS_CPU=$CLIENT_CPU   taskset pinning (ignored without taskset
#                 or with fewer than 2 CPUs)
#   SKIP_BUILD=1  use the release binaries already built
#   ALWAYS_SAVE_ROW=0   leave out the tower-sessions (always_save) row
#   POSTGRES_ROWS=0     leave out the PostgreSQL rows (they need PostgreSQL's binaries under
#                 /usr/lib/postgresql/*/bin; the server is private: initdb in the scratch
#                 directory, a free port, default settings, pinned like Redis)
#   TARGETS="tower-sessions-sqlx shop-postgres"   measure only these rows (names as in
#                 the script's targets list); comparisons missing a row are left out
#   CACHE_SIZE=10000    sessions cached per instance: the shop's SESSION_CACHE and the moka
#                 peer's MOKA_CAPACITY
#   MAX_NOISE=0.15 NOISE_RETRIES=2 QUIET_WAIT=30   the machine may be shared: before each
#                 measurement wait up to QUIET_WAIT s for other processes to use at most
#                 MAX_NOISE CPU; measure again (up to NOISE_RETRIES times) when they took more
#                 meanwhile, and keep the quietest measurement. The table shows what they took.
# Needs: cargo, wrk, redis-server, curl. Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "loadtest: $*" >&2
    exit 1
}

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
REDIS_CPU=${REDIS_CPU:-$CLIENT_CPU}
SKIP_BUILD=${SKIP_BUILD:-0}
ALWAYS_SAVE_ROW=${ALWAYS_SAVE_ROW:-1}
TOKEN_ROWS=${TOKEN_ROWS:-1}
POSTGRES_ROWS=${POSTGRES_ROWS:-1}
CACHE_SIZE=${CACHE_SIZE:-10000}
MAX_NOISE=${MAX_NOISE:-0.15}
NOISE_RETRIES=${NOISE_RETRIES:-2}
QUIET_WAIT=${QUIET_WAIT:-30}

# Durations in wrk's syntax, bounded: a typo must not start an hour-long run.
seconds_of() {
    case "$1" in
        [0-9]s | [0-9][0-9]s | [0-9][0-9][0-9]s) echo "${1%s}" ;;
        [0-9] | [0-9][0-9] | [0-9][0-9][0-9]) echo "$1" ;;
        [0-9]m) echo $((${1%m} * 60)) ;;
        *) die "duration '$1': use 1s to 999s or 1m to 9m" ;;
    esac
}
duration_s=$(seconds_of "$DURATION")
warmup_s=$(seconds_of "$WARMUP")
[ "$duration_s" -ge 1 ] || die "DURATION must be at least 1s"
case "$ROUNDS" in [1-9]) ;; *) die "ROUNDS must be 1 to 9" ;; esac
case "$THREADS" in [1-9] | [1-9][0-9]) ;; *) die "THREADS must be 1 to 99" ;; esac
case "$CONNECTIONS" in [1-9] | [1-9][0-9] | [1-9][0-9][0-9]) ;; *) die "CONNECTIONS must be 1 to 999" ;; esac
[ "$CONNECTIONS" -ge "$THREADS" ] || die "CONNECTIONS must be at least THREADS"
[[ "$CACHE_SIZE" =~ ^[1-9][0-9]{0,5}$ ]] || die "CACHE_SIZE must be 1 to 999999"
case "$NOISE_RETRIES" in [0-5]) ;; *) die "NOISE_RETRIES must be 0 to 5" ;; esac
case "$QUIET_WAIT" in [0-9] | [0-9][0-9] | [1-5][0-9][0-9]) ;; *) die "QUIET_WAIT must be 0 to 599" ;; esac
awk -v x="$MAX_NOISE" 'BEGIN { exit !(x ~ /^[0-9]+(\.[0-9]+)?$/) }' || die "MAX_NOISE must be a number"

for tool in cargo wrk redis-server curl; do
    command -v "$tool" >/dev/null ||
        die "$tool is not installed (Debian: apt-get install wrk redis-server curl; .ci/run installs them)"
done

pinning=no
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pinning=yes
fi
# pin CPU COMMAND...: exec COMMAND on CPU (taskset execs, so $! of `pin ... &` is COMMAND's pid).
pin() {
    local cpu=$1
    shift
    if [ "$pinning" = yes ]; then
        exec taskset -c "$cpu" "$@"
    else
        exec "$@"
    fi
}

load_before=$(cut -d ' ' -f 1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
work=$(mktemp -d "${TMPDIR:-/tmp}/loadtest.XXXXXX")
script=loadtest
# shellcheck source=scripts/processes.sh
. scripts/processes.sh

# CPU time (user + system) of PID so far, in microseconds.
cpu_us() {
    local ticks
    ticks=$(sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }')
    echo $((ticks * 1000000 / clk_tck))
}
clk_tck=$(getconf CLK_TCK)

# CPU time used on the whole machine so far (all CPUs, not idle nor waiting), in microseconds.
machine_busy_us() {
    awk -v hz="$clk_tck" '/^cpu / { printf "%.0f\n", ($2 + $3 + $4 + $7 + $8 + $9) * 1000000 / hz }' \
        /proc/stat
}

# CPU time of this shell's waited-for children (wrk) so far, in microseconds, in $children.
# `times` must run in this shell: a subshell's count of its children starts at zero.
children_us() {
    times >"$work/times"
    children=$(awk 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, p, "m"); t += p[1] * 60 + p[2] }
        printf "%.0f\n", t * 1000000 }' "$work/times")
}

# --- build -----------------------------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-target}
if [ "$SKIP_BUILD" != 1 ]; then
    echo "building (release): shop, bench-peers" >&2
    cargo build --release -p shop >&2
    cargo build --release -p bench-peers >&2
fi
shop_bin=$target_dir/release/shop
peers_bin=$target_dir/release/bench-peers
[ -x "$shop_bin" ] || die "$shop_bin is missing (run without SKIP_BUILD=1)"
[ -x "$peers_bin" ] || die "$peers_bin is missing (run without SKIP_BUILD=1)"

# --- private Redis ---------------------------------------------------------------------------
# Up to 3 ports: another process may take the chosen one between the check and the bind.
for attempt in 1 2 3; do
    redis_port=$(free_port)
    (pin "$REDIS_CPU" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$work" --logfile "$work/redis.log") &
    redis_pid=$!
    pids+=("$redis_pid")
    wait_port "$redis_port" "$redis_pid" redis-server "$work/redis.log" && break
    stop "$redis_pid"
    [ "$attempt" -lt 3 ] || die "redis-server did not start (3 attempts)"
done
redis_url="redis://127.0.0.1:$redis_port"

# --- private PostgreSQL ----------------------------------------------------------------------
pg_pid=""
if [ "$POSTGRES_ROWS" != 0 ]; then
    pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] ||
        die "PostgreSQL is not installed (apt-get install postgresql), or set POSTGRES_ROWS=0"
    # PostgreSQL refuses to run as root: as root, run it as postgres (setpriv execs, so
    # the pid is the postmaster's).
    as_pg=()
    mkdir "$work/pg"
    if [ "$(id -u)" = 0 ]; then
        chmod 755 "$work"
        chown postgres:postgres "$work/pg"
        as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
    fi
    "${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 \
        --no-sync >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; die "initdb failed"; }
    for attempt in 1 2 3; do
        pg_port=$(free_port)
        (pin "$REDIS_CPU" "${as_pg[@]}" "$pg_bin/postgres" -D "$work/pg/data" -p "$pg_port" \
            -k "$work/pg" -c listen_addresses=127.0.0.1) >"$work/postgres.log" 2>&1 &
        pg_pid=$!
        pids+=("$pg_pid")
        wait_port "$pg_port" "$pg_pid" postgres "$work/postgres.log" && break
        stop "$pg_pid"
        [ "$attempt" -lt 3 ] || die "postgres did not start (3 attempts)"
    done
    database_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
fi

# store_cpu_us TARGET: CPU time so far of the store TARGET uses, in microseconds: Redis, or
# PostgreSQL's postmaster and every process it forked (one backend per connection).
store_cpu_us() {
    case "$1" in
        shop-postgres | tower-sessions-sqlx)
            local total=0 pid
            for pid in "$pg_pid" $(ps -o pid= --ppid "$pg_pid"); do
                total=$((total + $(cpu_us "$pid" 2>/dev/null || echo 0)))
            done
            echo "$total"
            ;;
        *) cpu_us "$redis_pid" ;;
    esac
}

session_keys=$(head -c 32 /dev/urandom | base64)
cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"sku":"socks","qty":1}'
wrk.headers["Content-Type"] = "application/json"
EOF

# start_server TARGET PORT: starts TARGET on PORT; its pid in $server_pid.
start_server() {
    local target=$1 port=$2 log=$work/$1.log
    case "$target" in
        no-io)
            (pin "$SERVER_CPU" "$peers_bin" no-io --port "$port") >"$log" 2>&1 &
            ;;
        baseline)
            (pin "$SERVER_CPU" "$peers_bin" baseline --redis-url "$redis_url" --port "$port") \
                >"$log" 2>&1 &
            ;;
        shop-nocache | shop-cache)
            local cache=0
            [ "$target" = shop-nocache ] || cache=$CACHE_SIZE
            (pin "$SERVER_CPU" env REDIS_URL="$redis_url" SESSION_KEYS="$session_keys" \
                SESSION_CACHE="$cache" COOKIE_SECURE=false PORT="$port" RUST_LOG=warn \
                "$shop_bin") >"$log" 2>&1 &
            ;;
        shop-token | shop-token-norev)
            # Token mode: the session sealed in the cookie; revocations in Redis, read
            # through the coherent cache, or none at all (no Redis).
            local redis=()
            [ "$target" = shop-token-norev ] || redis=(REDIS_URL="$redis_url")
            (pin "$SERVER_CPU" env "${redis[@]}" SESSION_MODE=token SESSION_KEYS="$session_keys" \
                SESSION_CACHE="$CACHE_SIZE" COOKIE_SECURE=false PORT="$port" RUST_LOG=warn \
                "$shop_bin") >"$log" 2>&1 &
            ;;
        tower-sessions)
            (pin "$SERVER_CPU" "$peers_bin" tower-sessions --redis-url "$redis_url" --port "$port") \
                >"$log" 2>&1 &
            ;;
        tower-sessions-moka)
            (pin "$SERVER_CPU" env MOKA_CAPACITY="$CACHE_SIZE" "$peers_bin" tower-sessions-moka \
                --redis-url "$redis_url" --port "$port") >"$log" 2>&1 &
            ;;
        shop-postgres)
            (pin "$SERVER_CPU" env DATABASE_URL="$database_url" SESSION_KEYS="$session_keys" \
                COOKIE_SECURE=false PORT="$port" RUST_LOG=warn "$shop_bin") >"$log" 2>&1 &
            ;;
        tower-sessions-sqlx)
            (pin "$SERVER_CPU" env DATABASE_URL="$database_url" "$peers_bin" tower-sessions-sqlx \
                --port "$port") >"$log" 2>&1 &
            ;;
        tower-sessions-always-save)
            (pin "$SERVER_CPU" env TS_ALWAYS_SAVE=1 "$peers_bin" tower-sessions \
                --redis-url "$redis_url" --port "$port") >"$log" 2>&1 &
            ;;
        *) die "unknown target $target" ;;
    esac
    server_pid=$!
    pids+=("$server_pid")
}

# login PORT: POST /login as "bench", prints the `id` cookie's value.
login() {
    local port=$1 headers cookie
    headers=$(curl -sS --max-time 5 -D - -o "$work/login.body" -X POST \
        -H 'Content-Type: application/json' --data '{"user":"bench"}' \
        "http://127.0.0.1:$port/login") || die "POST /login on port $port failed"
    cookie=$(printf '%s\n' "$headers" | tr -d '\r' |
        sed -n 's/^[Ss][Ee][Tt]-[Cc][Oo][Oo][Kk][Ii][Ee]: *id=\([^;]*\).*/\1/p' | head -n 1)
    [ -n "$cookie" ] || die "POST /login on port $port set no id cookie: $headers"
    echo "$cookie"
}

# expect_200 URL CURL_ARGS...: one request that must answer 200.
expect_200() {
    local url=$1 code
    shift
    code=$(curl -sS --max-time 5 -o "$work/check.body" -w '%{http_code}' "$@" "$url") ||
        die "request to $url failed"
    [ "$code" = 200 ] || die "$url answered $code: $(head -c 200 "$work/check.body")"
}

# run_wrk DURATION OUT URL COOKIE [LUA]: one wrk run, pinned and bounded; in the background
# so that a signal to this script is handled at once.
run_wrk() {
    local duration=$1 out=$2 url=$3 cookie=$4 lua=${5:-} limit wrk_pid status=0
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency)
    [ -z "$cookie" ] || args+=(-H "Cookie: id=$cookie")
    [ -z "$lua" ] || args+=(-s "$lua")
    limit=$(($(seconds_of "$duration") + 30))
    (pin "$CLIENT_CPU" timeout "$limit" wrk "${args[@]}" "$url") >"$out" 2>&1 &
    wrk_pid=$!
    pids+=("$wrk_pid")
    wait "$wrk_pid" || status=$?
    forget "$wrk_pid"
    [ "$status" = 0 ] || { cat "$out" >&2; die "wrk failed on $url (status $status)"; }
}

# wrk's latency ("812.00us", "1.23ms", "1.02s") in microseconds.
latency_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000;
        else if (u == "m") f = 60000000; else { print "nan"; exit }
        printf "%.0f\n", n * f }'
}

results=$work/results.tsv
: >"$results"

# wait_quiet: up to QUIET_WAIT s until other processes use at most MAX_NOISE CPU over 1 s (our
# servers are idle meanwhile, so the whole machine's busy time is theirs).
wait_quiet() {
    local _ b0 b1
    for _ in $(seq 1 "$QUIET_WAIT"); do
        b0=$(machine_busy_us)
        sleep 1
        b1=$(machine_busy_us)
        if awk -v b=$((b1 - b0)) -v max="$MAX_NOISE" 'BEGIN { exit !(b / 1000000 <= max) }'; then
            return
        fi
    done
    echo "  the machine is still busy after ${QUIET_WAIT}s: measuring anyway" >&2
}

# measure_once TARGET ROUTE PORT SERVER_PID COOKIE PATH LUA OUT: one measurement; its row
# (without the round) in $row.
measure_once() {
    local target=$1 route=$2 port=$3 pid=$4 cookie=$5 path=$6 lua=$7 out=$8
    local server0 redis0 wrk0 busy0 server1 redis1 wrk1 busy1 others
    server0=$(cpu_us "$pid")
    redis0=$(store_cpu_us "$target")
    children_us
    wrk0=$children
    busy0=$(machine_busy_us)
    run_wrk "$DURATION" "$out" "http://127.0.0.1:$port$path" "$cookie" "$lua"
    busy1=$(machine_busy_us)
    server1=$(cpu_us "$pid")
    redis1=$(store_cpu_us "$target")
    children_us
    wrk1=$children
    # CPU time taken by other processes meanwhile, in CPUs: the noise on this row.
    others=$(awk -v b=$((busy1 - busy0)) -v o=$((server1 - server0 + redis1 - redis0 + wrk1 - wrk0)) \
        -v d="$duration_s" 'BEGIN { x = (b - o) / (d * 1000000); printf "%.2f\n", x < 0 ? 0 : x }')
    local rps p50 p99 requests non2xx errors
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(latency_us "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(latency_us "$(awk '$1 == "99%" { print $2 }' "$out")")
    requests=$(awk '/ requests in / { print $1 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    errors=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
    [ -n "$rps" ] && [ -n "$requests" ] && [ "$requests" -gt 0 ] ||
        { cat "$out" >&2; die "could not read wrk's output for $target $route"; }
    row=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$target" "$route" \
        "$rps" "$p50" "$p99" "$requests" "${non2xx:-0}" "${errors:-0}" \
        "$(((server1 - server0) / requests))" "$(((redis1 - redis0) / requests))" "$others")
}

# measure ROUND TARGET ROUTE PORT SERVER_PID COOKIE: waits for a quiet machine, warms up,
# measures (again, up to NOISE_RETRIES times, while other processes took more than MAX_NOISE
# CPU), and appends the quietest measurement's row.
measure() {
    local round=$1 target=$2 route=$3 port=$4 pid=$5 cookie=$6 lua="" path attempt
    local best="" best_noise noise
    case "$route" in
        "GET /me") path=/me ;;
        "POST /cart/items") path=/cart/items lua=$work/post.lua ;;
    esac
    echo "round $round: $target $route (warm-up $WARMUP, measure $DURATION)" >&2
    wait_quiet
    run_wrk "$WARMUP" "$work/warmup.txt" "http://127.0.0.1:$port$path" "$cookie" "$lua"
    for attempt in $(seq 0 "$NOISE_RETRIES"); do
        measure_once "$target" "$route" "$port" "$pid" "$cookie" "$path" "$lua" \
            "$work/wrk-$round-$target-${path//\//_}-$attempt.txt"
        noise=${row##*$'\t'}
        if [ -z "$best" ] || awk -v a="$noise" -v b="$best_noise" 'BEGIN { exit !(a < b) }'; then
            best=$row best_noise=$noise
        fi
        awk -v a="$noise" -v max="$MAX_NOISE" 'BEGIN { exit !(a > max) }' || break
        [ "$attempt" -lt "$NOISE_RETRIES" ] || break
        echo "  other processes took $noise CPU meanwhile: measuring again" >&2
        wait_quiet
    done
    printf '%s\t%s\n' "$round" "$best" >>"$results"
}

targets=(no-io baseline tower-sessions tower-sessions-moka shop-nocache shop-cache)
[ "$TOKEN_ROWS" = 0 ] || targets+=(shop-token shop-token-norev)
[ "$ALWAYS_SAVE_ROW" = 0 ] || targets+=(tower-sessions-always-save)
[ "$POSTGRES_ROWS" = 0 ] || targets+=(tower-sessions-sqlx shop-postgres)
if [ -n "${TARGETS:-}" ]; then
    for wanted in $TARGETS; do
        [[ " ${targets[*]} " == *" $wanted "* ]] || die "TARGETS: no row named $wanted"
    done
    read -r -a targets <<<"$TARGETS"
fi

for round in $(seq 1 "$ROUNDS"); do
    for target in "${targets[@]}"; do
        for attempt in 1 2 3; do
            port=$(free_port)
            start_server "$target" "$port"
            pid=$server_pid
            wait_port "$port" "$pid" "$target" "$work/$target.log" && break
            stop "$pid"
            [ "$attempt" -lt 3 ] || die "$target did not start (3 attempts)"
        done
        case "$target" in
            no-io | baseline)
                expect_200 "http://127.0.0.1:$port/me"
                measure "$round" "$target" "GET /me" "$port" "$pid" ""
                ;;
            *)
                cookie=$(login "$port")
                expect_200 "http://127.0.0.1:$port/me" -H "Cookie: id=$cookie"
                measure "$round" "$target" "GET /me" "$port" "$pid" "$cookie"
                if [ "$target" != tower-sessions-always-save ]; then
                    expect_200 "http://127.0.0.1:$port/cart/items" -H "Cookie: id=$cookie" \
                        -H 'Content-Type: application/json' --data '{"sku":"socks","qty":1}'
                    measure "$round" "$target" "POST /cart/items" "$port" "$pid" "$cookie"
                fi
                ;;
        esac
        stop "$pid"
    done
done

# --- report ----------------------------------------------------------------------------------
# median TARGET ROUTE COLUMN: the median (the lower one for an even count) over the rounds.
median() {
    awk -F'\t' -v t="$1" -v r="$2" -v c="$3" '$2 == t && $3 == r { print $c }' "$results" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
ms() {
    awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'
}
label() {
    case "$1" in
        no-io) echo "no-I/O handler" ;;
        tower-sessions-moka) echo "tower-sessions + moka" ;;
        shop-nocache) echo "shop, SESSION_CACHE=0" ;;
        shop-cache) echo "shop, SESSION_CACHE=$CACHE_SIZE" ;;
        shop-token) echo "shop, SESSION_MODE=token, revocations in Redis (cached)" ;;
        shop-token-norev) echo "shop, SESSION_MODE=token, no Redis" ;;
        tower-sessions-always-save) echo "tower-sessions (always_save)" ;;
        shop-postgres) echo "shop on PostgreSQL (DATABASE_URL)" ;;
        tower-sessions-sqlx) echo "tower-sessions (sqlx PostgreSQL)" ;;
        *) echo "$1" ;;
    esac
}

echo
echo "### Run of $started"
echo
echo "Command: \`DURATION=$DURATION WARMUP=$WARMUP THREADS=$THREADS CONNECTIONS=$CONNECTIONS ROUNDS=$ROUNDS" \
    "CACHE_SIZE=$CACHE_SIZE MAX_NOISE=$MAX_NOISE NOISE_RETRIES=$NOISE_RETRIES QUIET_WAIT=$QUIET_WAIT" \
    "${TARGETS:+TARGETS=\"$TARGETS\" }scripts/loadtest.sh\`"
echo "wrk: \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency\` after a $WARMUP warm-up;" \
    "pinning: $([ "$pinning" = yes ] && echo "server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU, redis-server on CPU $REDIS_CPU" || echo none)"
echo "Machine: $(nproc) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)," \
    "$(free -h | awk '/^Mem:/ { print $2 }') RAM, load average before the run: $load_before"
echo "Versions: $(git describe --always --dirty 2>/dev/null || echo '?'), $(rustc --version)," \
    "Redis $(redis-server --version | awk '{ print $3 }'), $([ "$POSTGRES_ROWS" = 0 ] || "$pg_bin/postgres" --version), $(wrk --version 2>&1 | head -n 1 | awk '{ print $1, $2 }')"
[ "$ROUNDS" = 1 ] || echo "Figures: per column, the median of $ROUNDS rounds."
echo
echo "| target | route | requests/s | p50 | p99 | server CPU / request | store CPU / request (Redis or PostgreSQL) | other processes | non-2xx |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
while IFS=$'\t' read -r target route; do
    printf '| %s | %s | %.0f | %s | %s | %s µs | %s µs | %s CPU | %s |\n' "$(label "$target")" \
        "$route" "$(median "$target" "$route" 4)" "$(ms "$(median "$target" "$route" 5)")" \
        "$(ms "$(median "$target" "$route" 6)")" "$(median "$target" "$route" 10)" \
        "$(median "$target" "$route" 11)" "$(median "$target" "$route" 12)" \
        "$(median "$target" "$route" 8)"
done < <(awk -F'\t' '$1 == 1 { print $2 "\t" $3 }' "$results")

# ratio NAME A_TARGET A_ROUTE B_TARGET B_ROUTE COLUMN OP GOAL: A / B against a goal.
ratio() {
    local name=$1 a b
    a=$(median "$2" "$3" "$6")
    b=$(median "$4" "$5" "$6")
    [ -n "$a" ] && [ -n "$b" ] || return 0
    awk -v name="$name" -v a="$a" -v b="$b" -v op="${7:-}" -v goal="${8:-}" 'BEGIN {
        r = a / b
        if (op == "") { printf "| %s | %.2fx | | |\n", name, r; exit }
        met = (op == ">=") ? (r >= goal) : (r <= goal)
        printf "| %s | %.2fx | %s %.2fx | %s |\n", name, r, op, goal, met ? "met" : "missed" }'
}
echo
echo "| comparison | ratio | goal | |"
echo "|---|---:|---:|---|"
# The shop with its cache against the limits and the peers, then the same goals for both
# shop rows (the goals of the performance issue).
cached="shop, SESSION_CACHE=$CACHE_SIZE"
ratio "$cached GET /me req/s vs baseline" shop-cache "GET /me" baseline "GET /me" 4 ">=" 1.4
ratio "$cached GET /me req/s vs tower-sessions + moka" \
    shop-cache "GET /me" tower-sessions-moka "GET /me" 4 ">=" 1.0
ratio "$cached GET /me req/s vs no-I/O handler" shop-cache "GET /me" no-io "GET /me" 4 ">=" 0.75
ratio "$cached GET /me req/s vs SESSION_CACHE=0" shop-cache "GET /me" shop-nocache "GET /me" 4
for shop in shop-cache shop-nocache; do
    name=$(label "$shop")
    ratio "$name GET /me req/s vs tower-sessions" "$shop" "GET /me" tower-sessions "GET /me" 4 ">=" 1.2
    ratio "$name POST /cart/items req/s vs tower-sessions" \
        "$shop" "POST /cart/items" tower-sessions "POST /cart/items" 4 ">=" 1.3
    ratio "$name GET /me p99 vs tower-sessions" "$shop" "GET /me" tower-sessions "GET /me" 6 "<=" 1.0
    ratio "$name POST /cart/items p99 vs tower-sessions" \
        "$shop" "POST /cart/items" tower-sessions "POST /cart/items" 6 "<=" 1.0
done
if [ "$TOKEN_ROWS" != 0 ]; then
    ratio "token mode, revocations in Redis, GET /me req/s vs no-I/O handler" \
        shop-token "GET /me" no-io "GET /me" 4 ">=" 0.85
    ratio "token mode, no Redis, GET /me req/s vs no-I/O handler" \
        shop-token-norev "GET /me" no-io "GET /me" 4
    ratio "token mode, revocations in Redis, GET /me req/s vs baseline" \
        shop-token "GET /me" baseline "GET /me" 4
fi
ratio "shop, SESSION_CACHE=0 GET /me req/s vs baseline" shop-nocache "GET /me" baseline "GET /me" 4 ">=" 0.9
ratio "shop, SESSION_CACHE=0 GET /me p99 vs baseline" shop-nocache "GET /me" baseline "GET /me" 6
[ "$ALWAYS_SAVE_ROW" = 0 ] || ratio "shop, SESSION_CACHE=0 GET /me req/s vs tower-sessions (always_save)" \
    shop-nocache "GET /me" tower-sessions-always-save "GET /me" 4

if [ "$POSTGRES_ROWS" != 0 ]; then
    pg="shop on PostgreSQL (DATABASE_URL)"
    ratio "$pg GET /me req/s vs tower-sessions (sqlx PostgreSQL)" \
        shop-postgres "GET /me" tower-sessions-sqlx "GET /me" 4 ">=" 1.0
    ratio "$pg POST /cart/items req/s vs tower-sessions (sqlx PostgreSQL)" \
        shop-postgres "POST /cart/items" tower-sessions-sqlx "POST /cart/items" 4 ">=" 1.0
    ratio "$pg GET /me req/s vs shop, SESSION_CACHE=0 (Redis)" \
        shop-postgres "GET /me" shop-nocache "GET /me" 4
    ratio "$pg POST /cart/items req/s vs shop, SESSION_CACHE=0 (Redis)" \
        shop-postgres "POST /cart/items" shop-nocache "POST /cart/items" 4
fi

if [ "$ROUNDS" != 1 ]; then
    echo
    echo "Every round (requests/s, p99, CPU used by other processes meanwhile):"
    echo
    awk -F'\t' '{ printf "- round %s, %s %s: %.0f, %.2f ms, %s\n", $1, $2, $3, $4, $6 / 1000, $12 }' \
        "$results"
fi

failed=$(awk -F'\t' '$8 > 0 || $9 > 0 { n++ } END { print n + 0 }' "$results")
if [ "$failed" -gt 0 ]; then
    echo
    echo "WARNING: $failed measurement(s) had non-2xx responses or socket errors: see the" \
        "non-2xx column; those figures are not comparable." >&2
    exit 1
fi
