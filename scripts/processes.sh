# Sourced by scripts/loadtest.sh and scripts/stale_peers.sh: the child processes a script
# starts (killed on exit) and loopback ports. Needs `work` (a scratch directory, removed on
# exit), `script` (the name in messages) and `die` from the script that sources it.

pids=()
# On exit: SIGTERM to every child still running (timeout passes it on to wrk), SIGKILL to
# those left after 2 s.
cleanup() {
    local pid="" _
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 1 20); do
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && break
            pid=""
        done
        [ -n "$pid" ] || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A loopback port no socket uses, below the kernel's ephemeral range when possible (a port
# that some client connection holds as its local port cannot be listened on).
ephemeral_low=$(cut -f 1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
if [ "$ephemeral_low" -gt 12000 ]; then
    port_low=10000 port_span=$((ephemeral_low - 10000))
else
    port_low=20000 port_span=20000
fi
free_port() {
    local port _
    for _ in $(seq 1 100); do
        port=$((port_low + RANDOM % port_span))
        if ! port_open "$port" &&
            { ! command -v ss >/dev/null || [ -z "$(ss -Htan "( sport = :$port )")" ]; }; then
            echo "$port"
            return
        fi
    done
    die "no free loopback port found in 100 tries"
}

# wait_port PORT PID NAME LOG: until PORT accepts connections (status 0), NAME exited
# (status 1, its log shown) or 15 s passed (status 2).
wait_port() {
    local port=$1 pid=$2 name=$3 log=$4 _
    for _ in $(seq 1 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$script: $name exited before listening on port $port; $log:" >&2
            tail -n 20 "$log" >&2 || true
            return 1
        fi
        if port_open "$port"; then
            return 0
        fi
        sleep 0.1
    done
    echo "$script: $name did not listen on port $port within 15 s; $log:" >&2
    tail -n 20 "$log" >&2 || true
    return 2
}

# forget PID: no longer a child for the exit trap to kill.
forget() {
    local other left=()
    for other in "${pids[@]}"; do
        [ "$other" = "$1" ] || left+=("$other")
    done
    pids=("${left[@]}")
}

# stop PID: SIGTERM, then SIGKILL after 5 s.
stop() {
    local pid=$1 _
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}
