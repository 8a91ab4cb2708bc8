#!/usr/bin/env python3
"""Redis memory per session: tower-stateless's shop against tower-sessions, side by side.

For each server, on its own fresh redis-server (loopback, free port, no persistence):
N logins of distinct users, each followed by one cart add, over one keep-alive HTTP
connection; then `INFO memory` `used_memory` before and after, divided by N, plus a
breakdown by key kind (`MEMORY USAGE` of every key, `OBJECT ENCODING`).

    cargo build --release -p shop -p bench-peers
    python3 scripts/footprint.py [--sessions 5000] [--rounds 3] [--target target/release]

Prints a Markdown table (medians over the rounds) for BENCHMARKS.md. Every process it
starts is stopped when it ends.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {limit} s")


class Redis:
    def __init__(self, workdir):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="footprint-redis-", dir=workdir)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args],
                             check=True, capture_output=True, text=True).stdout
        return out.strip()

    def used_memory(self):
        # Let lazy frees and the allocator settle.
        time.sleep(0.2)
        for line in self.cli("INFO", "memory").splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        raise RuntimeError("no used_memory in INFO memory")

    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def serve(command, env, port):
    process = subprocess.Popen(command, env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
    except Exception:
        process.kill()
        raise
    return process


def load(port, sessions):
    """N logins of distinct users, each then adding one cart item, keep-alive."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    for n in range(sessions):
        body = json.dumps({"user": f"user-{n:06}"})
        connection.request("POST", "/login", body, headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"login answered {response.status}")
        cookie = response.getheader("set-cookie").split(";")[0]
        body = json.dumps({"sku": "socks", "qty": 1})
        connection.request("POST", "/cart/items", body, {**headers, "cookie": cookie})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"cart add answered {response.status}")
    connection.close()


def breakdown(redis):
    """Bytes by key kind (MEMORY USAGE), and the encodings seen."""
    kinds, encodings = {}, set()
    for key in redis.cli("--scan").splitlines():
        kind = redis.cli("TYPE", key)
        usage = int(redis.cli("MEMORY", "USAGE", key, "SAMPLES", "0"))
        encodings.add(f"{kind}:{redis.cli('OBJECT', 'ENCODING', key)}")
        count, total = kinds.get(kind, (0, 0))
        kinds[kind] = (count + 1, total + usage)
    return kinds, sorted(encodings)


def measure(name, command, env, sessions, workdir):
    redis = Redis(workdir)
    port = free_port()
    server = None
    try:
        server = serve(command, {**env, "REDIS_URL": redis.url(), "PORT": str(port)}, port)
        # One warm-up session, so that scripts and connections exist before "before".
        load(port, 1)
        redis.cli("FLUSHALL")
        before = redis.used_memory()
        load(port, sessions)
        after = redis.used_memory()
        kinds, encodings = breakdown(redis)
        keys = sum(count for count, _ in kinds.values())
        return {
            "name": name,
            "per_session": (after - before) / sessions,
            "keys_per_session": keys / sessions,
            "kinds": {k: (c, t / sessions) for k, (c, t) in kinds.items()},
            "encodings": encodings,
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        redis.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", default="target/release")
    args = parser.parse_args()
    shop = os.path.join(args.target, "shop")
    peers = os.path.join(args.target, "bench-peers")
    for binary in (shop, peers):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: cargo build --release -p shop -p bench-peers")
    keys = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    servers = [
        ("tower-sessions 0.14 + redis-store", [peers, "tower-sessions"], {}),
        ("tower-stateless shop, RedisStore", [shop],
         {"SESSION_KEYS": keys, "COOKIE_SECURE": "false", "INSTANCE": "footprint"}),
    ]
    workdir = tempfile.mkdtemp(prefix="footprint-")
    results = {name: [] for name, _, _ in servers}
    try:
        for round_ in range(args.rounds):
            # Side by side: each round measures every server once, in turn.
            for name, command, env in servers:
                result = measure(name, command, env, args.sessions, workdir)
                results[name].append(result)
                print(f"round {round_ + 1}: {name}: {result['per_session']:.0f} B/session, "
                      f"{result['keys_per_session']:.2f} keys/session, "
                      f"by kind {result['kinds']}, encodings {result['encodings']}",
                      file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"| server ({args.sessions} logins + one cart add each, median of {args.rounds}) "
          "| Redis keys per session | bytes of `used_memory` per session | by key kind "
          "(`MEMORY USAGE` per session) |")
    print("|---|---:|---:|---|")
    for name, _, _ in servers:
        rounds = results[name]
        median = statistics.median(r["per_session"] for r in rounds)
        kinds = ", ".join(f"{kind} {bytes_:.0f} B" for kind, (_, bytes_)
                          in sorted(rounds[-1]["kinds"].items()))
        print(f"| {name} | {rounds[-1]['keys_per_session']:.2f} | {median:.0f} | {kinds} |")


if __name__ == "__main__":
    main()
