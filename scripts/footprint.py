#!/usr/bin/env python3
"""Redis memory per session: tower-stateless's shop against tower-sessions, side by side.

For each server, on its own fresh redis-server (loopback, free port, no persistence):
N logins of distinct users, each followed by one cart add, over one keep-alive HTTP
connection; then `INFO memory` `used_memory` before and after, divided by N, plus a
breakdown by key kind (`MEMORY USAGE` of every key, `OBJECT ENCODING`). For the shop it
then deletes every user index and every `:u` field and measures again: the same sessions
without their user binding.

    cargo build --release -p shop -p bench-peers
    python3 scripts/footprint.py [--sessions 5000] [--rounds 3] [--target target/release] \
        [--also "LABEL=path/to/another/shop"]

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


def load(port, sessions, login):
    """N sessions, keep-alive: each a login of a distinct user (when `login`) and then
    one cart add; without `login` the add makes an anonymous session (no user binding)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    for n in range(sessions):
        cart_headers = headers
        if login:
            body = json.dumps({"user": f"user-{n:06}"})
            connection.request("POST", "/login", body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"login answered {response.status}")
            cookie = response.getheader("set-cookie").split(";")[0]
            cart_headers = {**headers, "cookie": cookie}
        body = json.dumps({"sku": "socks", "qty": 1})
        connection.request("POST", "/cart/items", body, cart_headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"cart add answered {response.status}")
    connection.close()


def breakdown(redis):
    """Bytes by key kind (MEMORY USAGE), and the encodings seen."""
    kinds, encodings = {}, set()
    keys = redis.cli("--scan").splitlines()
    # One redis-cli for all keys: it runs the commands read from stdin in order, one
    # reply line each (key names here have no spaces or quotes).
    script = "".join(f"TYPE {key}\nMEMORY USAGE {key} SAMPLES 0\nOBJECT ENCODING {key}\n"
                     for key in keys)
    replies = subprocess.run(["redis-cli", "-p", str(redis.port)], input=script,
                             check=True, capture_output=True, text=True).stdout.splitlines()
    if len(replies) != 3 * len(keys):
        raise RuntimeError(f"{len(replies)} replies for {len(keys)} keys")
    for i in range(len(keys)):
        kind, usage, encoding = replies[3 * i:3 * i + 3]
        encodings.add(f"{kind}:{encoding}")
        count, total = kinds.get(kind, (0, 0))
        kinds[kind] = (count + 1, total + int(usage))
    return kinds, sorted(encodings)


def unbind_all(redis):
    """Deletes every user index and every session's user field (`:u`, or `:user` in layout 1)."""
    script = []
    for key in redis.cli("--scan").splitlines():
        if ":user:{" in key:
            script.append(f"DEL {key}\n")
        else:
            script.append(f"HDEL {key} :u :user\n")
    subprocess.run(["redis-cli", "-p", str(redis.port)], input="".join(script),
                   check=True, capture_output=True, text=True)


def measure(name, command, env, sessions, login, workdir, unbind=False):
    redis = Redis(workdir)
    port = free_port()
    server = None
    try:
        server = serve(command, {**env, "REDIS_URL": redis.url(), "PORT": str(port)}, port)
        # One warm-up session, so that scripts and connections exist before "before".
        load(port, 1, login)
        redis.cli("FLUSHALL")
        before = redis.used_memory()
        load(port, sessions, login)
        after = redis.used_memory()
        kinds, encodings = breakdown(redis)
        keys = sum(count for count, _ in kinds.values())
        unbound = None
        if unbind:
            # The same sessions without their user binding: the user's index gone and
            # the `:u` field dropped from every session hash.
            unbind_all(redis)
            unbound = (redis.used_memory() - before) / sessions
        return {
            "name": name,
            "per_session": (after - before) / sessions,
            "unbound_per_session": unbound,
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
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=SHOP",
                        help="another shop binary to measure side by side (e.g. an older "
                             "build, to compare layouts)")
    args = parser.parse_args()
    shop = os.path.join(args.target, "shop")
    peers = os.path.join(args.target, "bench-peers")
    for binary in (shop, peers):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: cargo build --release -p shop -p bench-peers")
    keys = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    shop_env = {"SESSION_KEYS": keys, "COOKIE_SECURE": "false", "INSTANCE": "footprint"}
    # (name, command, environment, whether to measure it again without user bindings)
    servers = [
        ("tower-sessions 0.14 + tower-sessions-redis-store", [peers, "tower-sessions"], {},
         False),
        ("tower-stateless shop, `RedisStore`", [shop], shop_env, True),
        ("tower-stateless shop, `RedisStore`, `SESSION_ENCRYPT=1`", [shop],
         {**shop_env, "SESSION_ENCRYPT": "1"}, True),
    ]
    for also in args.also:
        label, _, binary = also.partition("=")
        servers.append((label, [binary], shop_env, True))
    workdir = tempfile.mkdtemp(prefix="footprint-")
    results = {name: [] for name, _, _, _ in servers}
    try:
        for round_ in range(args.rounds):
            # Side by side: each round measures every server once, in turn.
            for name, command, env, unbind in servers:
                result = measure(name, command, env, args.sessions, True, workdir, unbind)
                results[name].append(result)
                print(f"round {round_ + 1}: {name}: {result['per_session']:.0f} B/session "
                      f"(unbound: {result['unbound_per_session']}), "
                      f"{result['keys_per_session']:.2f} keys/session, "
                      f"by kind {result['kinds']}, encodings {result['encodings']}",
                      file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"| server ({args.sessions} logins + one cart add each; median of {args.rounds} "
          "rounds) | Redis keys per session | bytes of `used_memory` per session | the same "
          "without user bindings | `MEMORY USAGE` per session, by key kind |")
    print("|---|---:|---:|---:|---|")
    for name, _, _, unbind in servers:
        rounds = results[name]
        median = statistics.median(r["per_session"] for r in rounds)
        unbound = (f"{statistics.median(r['unbound_per_session'] for r in rounds):.0f}"
                   if unbind else "—")
        kinds = ", ".join(f"{kind} {bytes_:.0f} B" for kind, (_, bytes_)
                          in sorted(rounds[-1]["kinds"].items()))
        print(f"| {name} | {rounds[-1]['keys_per_session']:.2f} | {median:.0f} | {unbound} "
              f"| {kinds} |")

if __name__ == "__main__":
    main()
