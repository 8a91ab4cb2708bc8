#!/usr/bin/env python3
"""Redis CPU per session write with N cache-holding instances: broadcast against per-key tracking.

What it measures: redis-server's own CPU time (`INFO cpu`: used_cpu_sys + used_cpu_user,
read just before and just after the write phase) divided by the number of session writes,
for four modes, each on its own fresh redis-server (loopback, free port, no persistence,
the same prepared sessions):

  none                  no cache: 32 writer connections run the crate's write script
                        (common.lua + change_set.lua + apply.lua, EVALSHA), one write in flight each.
  broadcast             today's design: N connections with `CLIENT TRACKING ON BCAST
                        PREFIX session:` (RESP3), drained continuously; the writes come
                        from 32 separate writer connections, as in `none`.
  per-key               the new design: N instances, each ONE RESP3 connection with
                        `CLIENT TRACKING ON NOLOOP` (default mode). Each instance first
                        reads its own sessions (HGETALL, so Redis tracks them for it), then
                        writes them on that connection with the "writer's copy" script
                        (the same script, then HGET of its metadata inside it); writes go to
                        the instances round-robin, 32 in flight in total.
  per-key-other-writer  the same, but each write is made by another instance than the one
                        holding the session: the holder gets an invalidation and reads the
                        key again (HGETALL) to keep tracking it; the writer holds no copy,
                        so its script answers with the whole session; a non-holder that gets one
                        (a previous writer, which the writer's copy made a tracker) drops
                        it. Needs at least 2 instances.
  per-key-untracked     (diagnostic, only with --modes) per-key without CLIENT TRACKING:
                        what the writer's copy and the connection layout cost alone.

The measured window is the write phase only: tracking is set up (and, per-key, every
session read by its holder) before it, and it ends once every write is answered, every
connection has answered a PING sent after the last write (so every push queued before has
been read) and every re-read is answered. Every write reply is checked (`saved`, and for
the writer's copy the metadata, or the whole session, first); any other reply is counted as an error and makes the
run fail (exit status 1) after printing what it measured.

    python3 scripts/tracking_cpu.py [--instances 1,10,100,400] [--sessions 10000] \\
        [--writes 100000] [--concurrency 32] [--rounds 3]

Rounds alternate the modes (each round runs every mode once for an instance count) and
the tables show medians: one window of 100,000 writes still varies by some 20% from run
to run on a 2-core VM, so a single round can put a ratio off by that much. The default
run (3 rounds) takes about 4 minutes on an idle 2-core machine.

Pinning: redis-server runs on core 0 (`taskset -c 0`), this load generator (one Python
process, asyncio over raw RESP sockets, standard library only) on core 1
(os.sched_setaffinity); --redis-core / --client-core change them. Redis CPU per write is
what counts; writes/s is bounded by whichever of redis-server and this single-threaded
generator saturates first (the output shows how busy each was), and how full Redis's
event-loop turns get changes its cost per write somewhat. The CPU other processes took
during each window is shown too, and a window where they took more than a quarter of a
core is flagged CONTENDED: run it on an otherwise idle machine. The Lua comes from
src/store/redis/lua/ next to this script. Every redis-server it starts is stopped (by PID)
when it ends, also on error.
"""

import argparse
import asyncio
import base64
import collections
import hashlib
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent.parent / "src" / "store" / "redis" / "lua"
PREFIX = "session:"
IDLE_MS = 86_400_000
ABSOLUTE_MS = 604_800_000
MODES = ("none", "broadcast", "per-key", "per-key-other-writer")
# Not run by default: per-key's connections and writer's copy without CLIENT TRACKING,
# to split per-key's cost between the writer's copy and the tracking table.
DIAGNOSTIC_MODES = ("per-key-untracked",)
# Other processes' CPU during a measured window (fraction of one core) above which the
# result is flagged.
CONTENDED = 0.25


# ---------------------------------------------------------------------------------------
# RESP2/RESP3


class Push(list):
    """A RESP3 out-of-band push (`>`)."""


class RespError(str):
    """A `-` or `!` reply."""


INCOMPLETE = None  # parse() returns None when the buffer holds no whole frame yet


def parse(buf, pos):
    """One frame of buf from pos: (value, next position), or INCOMPLETE."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return INCOMPLETE
    kind = buf[pos]
    if kind == 36 or kind == 61 or kind == 33:  # $ bulk, = verbatim, ! blob error
        n = int(buf[pos + 1:end])
        start = end + 2
        if n < 0:
            return None, start
        stop = start + n
        if len(buf) < stop + 2:
            return INCOMPLETE
        data = bytes(buf[start:stop])
        if kind == 61:
            data = data[4:]  # "txt:"
        elif kind == 33:
            data = RespError(data.decode(errors="replace"))
        return data, stop + 2
    if kind == 42 or kind == 62 or kind == 126:  # * array, > push, ~ set
        n = int(buf[pos + 1:end])
        pos = end + 2
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            r = parse(buf, pos)
            if r is INCOMPLETE:
                return INCOMPLETE
            items.append(r[0])
            pos = r[1]
        return (Push(items) if kind == 62 else items), pos
    if kind == 37 or kind == 124:  # % map, | attribute
        n = int(buf[pos + 1:end])
        pos = end + 2
        pairs = {}
        for _ in range(n):
            k = parse(buf, pos)
            if k is INCOMPLETE:
                return INCOMPLETE
            v = parse(buf, k[1])
            if v is INCOMPLETE:
                return INCOMPLETE
            key = tuple(k[0]) if isinstance(k[0], list) else k[0]
            pairs[key] = v[0]
            pos = v[1]
        if kind == 124:  # an attribute annotates the frame after it
            return parse(buf, pos)
        return pairs, pos
    line = bytes(buf[pos + 1:end])
    pos = end + 2
    if kind == 43:  # +
        return line, pos
    if kind == 45:  # -
        return RespError(line.decode(errors="replace")), pos
    if kind == 58 or kind == 40:  # : integer, ( big number
        return int(line), pos
    if kind == 95:  # _ null
        return None, pos
    if kind == 35:  # # boolean
        return line == b"t", pos
    if kind == 44:  # , double
        return float(line), pos
    raise RuntimeError(f"RESP: unknown frame type {chr(kind)!r} in {bytes(buf[pos - 40:pos + 40])!r}")


def bulk(value):
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, int):
        value = b"%d" % value
    return b"$%d\r\n%s\r\n" % (len(value), value)


def encode(*args):
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)


class Conn(asyncio.Protocol):
    """A RESP connection: replies go to the callbacks queued by send(), in order; pushes
    go to on_push(conn, push)."""

    def __init__(self, stats, index=-1, on_push=None):
        self.stats = stats
        self.index = index
        self.on_push = on_push
        self.buf = bytearray()
        self.pending = collections.deque()
        self.transport = None
        self.counting = False  # broadcast drain: count tokens instead of parsing
        self.tail = b""
        self.pushes = 0
        self.keys = 0
        self.pongs = 0

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if self.pending or not self.stats.closing:
            self.stats.error(f"connection {self.index} lost ({exc}), {len(self.pending)} replies owed")

    def data_received(self, data):
        if self.counting:
            # Broadcast tracking connections only ever get pushes (and the final PONG):
            # count them by their bytes, too many to parse one by one at 400 instances.
            # A token cut in two by the chunk boundary is counted with the tail of the
            # previous chunk; one wholly in that tail was counted already.
            tail = self.tail
            chunk = tail + data
            self.pushes += chunk.count(PUSH_TOKEN) - tail.count(PUSH_TOKEN)
            self.keys += chunk.count(KEY_TOKEN) - tail.count(KEY_TOKEN)
            self.pongs += chunk.count(PONG_TOKEN) - tail.count(PONG_TOKEN)
            self.tail = chunk[-TAIL:]
            return
        buf = self.buf
        buf += data
        pos, size = 0, len(buf)
        try:
            while pos < size:
                r = parse(buf, pos)
                if r is INCOMPLETE:
                    break
                value, pos = r
                if type(value) is Push:
                    self.pushes += 1
                    if self.on_push is None:
                        raise RuntimeError(f"unexpected push {value!r}")
                    self.on_push(self, value)
                elif self.pending:
                    self.pending.popleft()(value)
                else:
                    raise RuntimeError(f"a reply nobody asked for: {value!r}")
        except Exception as e:  # noqa: BLE001 - reported, and the run fails
            self.stats.error(f"connection {self.index}: {e!r}")
            self.transport.close()
            return
        del buf[:pos]

    def send(self, payload, callback):
        self.pending.append(callback)
        self.transport.write(payload)

    def call(self, *args):
        future = asyncio.get_running_loop().create_future()
        self.send(encode(*args), lambda v: future.done() or future.set_result(v))
        return future

    def pipeline(self, payloads):
        """Sends every payload at once; a future of all the replies, in order."""
        future = asyncio.get_running_loop().create_future()
        replies = []

        def collect(v):
            replies.append(v)
            if len(replies) == len(payloads) and not future.done():
                future.set_result(replies)

        for p in payloads:
            self.pending.append(collect)
        self.transport.write(b"".join(payloads))
        if not payloads:
            future.set_result([])
        return future


PUSH_TOKEN = b">2\r\n$10\r\ninvalidate\r\n"
KEY_TOKEN = b"\r\n" + PREFIX.encode()
PONG_TOKEN = b"+PONG\r\n"
TAIL = max(len(PUSH_TOKEN), len(KEY_TOKEN), len(PONG_TOKEN)) - 1


async def ok(future, what):
    value = await future
    if isinstance(value, RespError):
        raise RuntimeError(f"{what}: {value}")
    return value


async def connect(port, stats, index=-1, on_push=None, resp3=True):
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: Conn(stats, index, on_push), "127.0.0.1", port)
    if resp3:
        hello = await ok(conn.call("HELLO", "3"), "HELLO 3")
        if not isinstance(hello, dict) or hello.get(b"proto") != 3:
            raise RuntimeError(f"HELLO 3 answered {hello!r}")
    return conn


# ---------------------------------------------------------------------------------------
# redis-server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, core, maxclients):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tracking-cpu-redis-")
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", self.dir,
                   "--logfile", os.path.join(self.dir, "redis.log"),
                   "--maxclients", str(maxclients)]
        if core is not None:
            command = ["taskset", "-c", str(core)] + command  # taskset execs: same PID
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, limit=15.0):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.process.returncode}); "
                                   f"log: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server not answering on {self.port} after {limit} s")

    def log_tail(self):
        try:
            return Path(self.dir, "redis.log").read_text()[-2000:]
        except OSError:
            return "(no log)"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Sessions and scripts


def load_scripts():
    # common.lua, then the helpers apply.lua needs, as src/store/redis/scripts.rs does.
    common = (LUA_DIR / "common.lua").read_text() + (LUA_DIR / "change_set.lua").read_text()
    apply = (LUA_DIR / "apply.lua").read_text()
    plain = common + apply
    # As src/store/redis/scripts.rs composes the writer's-copy form (`SessionWrite::copy`).
    copy = ((LUA_DIR / "writers_copy_start.lua").read_text() + common + "local function run()\n"
            + apply + (LUA_DIR / "writers_copy.lua").read_text())
    return plain, copy


def cart(j):
    # A small JSON cart, about 100 bytes.
    return ('{"items":[{"sku":"SKU-%04d","qty":%d,"price_cents":%d}],'
            '"currency":"EUR","coupon":null,"rev":%d}' % (j % 9973, 1 + j % 5, 499 + j % 9000, j))


class Sessions:
    def __init__(self, count, seed=7):
        rng = random.Random(seed)
        self.keys = [PREFIX + base64.urlsafe_b64encode(rng.randbytes(24)).decode()
                     for _ in range(count)]
        self.key_bulks = [bulk(k) for k in self.keys]
        self.index = {k.encode(): i for i, k in enumerate(self.keys)}
        self.hgetall = [b"*2\r\n$7\r\nHGETALL\r\n" + kb for kb in self.key_bulks]
        self.rng = rng

    def prepare_payloads(self, now):
        """HSET (realistic layout 2: ':m', ':u', a cart, a CSRF token, a locale) and
        PEXPIRE of every session."""
        rng = self.rng
        out = []
        # Each session's write generation, as the instance that read it holds it.
        self.generations = []
        for i, key in enumerate(self.keys):
            created = now - rng.randrange(60_000, 3_600_000)
            refreshed = created + rng.randrange(0, now - created)
            gen = rng.randrange(1, 20)
            self.generations.append(gen)
            out.append(encode("HSET", key, ":m", f"{created}.{refreshed}.{gen}",
                              ":u", str(1_000_000 + i), "cart", cart(i),
                              "csrf", base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip("="),
                              "locale", "en-GB"))
            out.append(encode("PEXPIRE", key, IDLE_MS))
        return out


def write_payload(sha_head, key_bulk, now_ms, j, held=None):
    # EVALSHA sha 1 key [held] now idle absolute | 0 keep '' 1 cart <json> 0; `held` (the
    # writer's copy: the generation the writer holds, '' for none) needs sha_head(sha, 15).
    held = b"" if held is None else bulk(held)
    return (sha_head + key_bulk + held + bulk(now_ms) + WRITE_MIDDLE + bulk(cart(j))
            + b"$1\r\n0\r\n")


WRITE_MIDDLE = b"".join(bulk(a) for a in (IDLE_MS, ABSOLUTE_MS, "0", "keep", "", "1", "cart"))


def sha_head(sha, items=14):
    return b"*%d\r\n$7\r\nEVALSHA\r\n" % items + bulk(sha) + bulk("1")


# ---------------------------------------------------------------------------------------
# One measurement


class Stats:
    def __init__(self):
        self.errors = 0
        self.samples = []
        self.closing = False

    def error(self, what):
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(what)


def is_saved(v):
    return type(v) is list and len(v) == 1 and v[0] == b"saved"


def is_copy_saved(v):
    """`saved`, after the metadata (the writer held the session) or the whole session as
    HGETALL's array (it did not)."""
    if type(v) is not list or len(v) != 2 or v[1] != b"saved":
        return False
    return type(v[0]) is bytes or (type(v[0]) is list and len(v[0]) % 2 == 0)



def info_fields(text):
    out = {}
    for line in text.decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


async def info(ctrl):
    reply = await ok(ctrl.call("INFO", "cpu", "stats", "clients"), "INFO")
    f = info_fields(reply)
    f["cpu"] = float(f["used_cpu_sys"]) + float(f["used_cpu_user"])
    return f


async def self_check(ctrl, sha_plain, sha_copy, now):
    """Both scripts on a scratch session (before any tracking): `saved`, and the writer's
    copy puts the whole session, with its new metadata, first."""
    key = PREFIX + "selfcheck"
    await ok(ctrl.call("HSET", key, ":m", f"{now - 1000}.{now - 1000}.3", ":u", "42",
                       "cart", "{}"), "HSET")
    v = await ok(ctrl.call("EVALSHA", sha_plain, "1", key, now, IDLE_MS, ABSOLUTE_MS,
                           "0", "keep", "", "1", "cart", '{"a":1}', "0"), "apply.lua")
    if not is_saved(v):
        raise RuntimeError(f"apply.lua answered {v!r}, not ['saved']")
    # The writer holds generation 4: the metadata comes back.
    v = await ok(ctrl.call("EVALSHA", sha_copy, "1", key, "4", now + 1, IDLE_MS, ABSOLUTE_MS,
                           "0", "keep", "", "1", "cart", '{"a":2}', "0"), "writer's copy")
    if not is_copy_saved(v) or v[0] != f"{now - 1000}.{now + 1}.5".encode():
        raise RuntimeError(f"the writer's copy answered {v!r}")
    # A writer without a copy: the whole session comes back.
    v = await ok(ctrl.call("EVALSHA", sha_copy, "1", key, "", now + 2, IDLE_MS, ABSOLUTE_MS,
                           "0", "keep", "", "1", "cart", '{"a":3}', "0"), "writer's copy")
    if not is_copy_saved(v) or type(v[0]) is not list:
        raise RuntimeError(f"the writer's copy answered {v!r}")
    fields = dict(zip(v[0][::2], v[0][1::2]))
    if fields.get(b":m") != f"{now - 1000}.{now + 2}.6".encode() or fields.get(b"cart") != b'{"a":3}':
        raise RuntimeError(f"the writer's copy returned the session {v[0]!r}")
    await ok(ctrl.call("DEL", key), "DEL")


async def measure(args, mode, n, port, scripts, sessions):
    loop = asyncio.get_running_loop()
    stats = Stats()
    conns = []
    result = {"mode": mode, "instances": n}
    try:
        ctrl = await connect(port, stats)
        conns.append(ctrl)
        sha_plain = (await ok(ctrl.call("SCRIPT", "LOAD", scripts[0]), "SCRIPT LOAD")).decode()
        sha_copy = (await ok(ctrl.call("SCRIPT", "LOAD", scripts[1]), "SCRIPT LOAD")).decode()
        for sha, text in zip((sha_plain, sha_copy), scripts):
            if sha != hashlib.sha1(text.encode()).hexdigest():
                raise RuntimeError("SCRIPT LOAD returned an unexpected SHA")
        now = int(time.time() * 1000)
        await self_check(ctrl, sha_plain, sha_copy, now)
        payloads = sessions.prepare_payloads(now)
        for start in range(0, len(payloads), 2000):
            for v in await ctrl.pipeline(payloads[start:start + 2000]):
                if isinstance(v, RespError):
                    raise RuntimeError(f"preparing sessions: {v}")
        dbsize = await ok(ctrl.call("DBSIZE"), "DBSIZE")
        if dbsize != len(sessions.keys):
            raise RuntimeError(f"DBSIZE {dbsize} after preparing {len(sessions.keys)} sessions")

        total, window, count = args.writes, args.concurrency, len(sessions.keys)
        state = {"next": 0, "done": 0, "rereads": 0, "reread_owed": 0, "dropped": 0,
                 "push_frames": 0, "push_keys": 0}
        finished = loop.create_future()
        trackers, writers = [], []

        if mode in ("none", "broadcast"):
            if mode == "broadcast":
                for i in range(n):
                    c = await connect(port, stats, i)
                    r = await ok(c.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", PREFIX),
                                 "CLIENT TRACKING")
                    if r != b"OK":
                        raise RuntimeError(f"CLIENT TRACKING answered {r!r}")
                    c.counting = True
                    trackers.append(c)
                conns.extend(trackers)
            head = sha_head(sha_plain)
            for i in range(window):
                writers.append(await connect(port, stats, 10_000 + i))
            conns.extend(writers)
            check = is_saved

            def issue(conn):
                j = state["next"]
                state["next"] = j + 1
                conn.send(write_payload(head, sessions.key_bulks[j % count],
                                        int(time.time() * 1000), j), conn.on_write)

            def make_on_write(conn):
                def on_write(v):
                    if not check(v):
                        stats.error(f"write reply {v!r}")
                    state["done"] += 1
                    if state["next"] < total:
                        issue(conn)
                    elif state["done"] == total and not finished.done():
                        finished.set_result(None)
                return on_write

            for w in writers:
                w.on_write = make_on_write(w)

            def start():
                for w in writers[:min(window, total)]:
                    issue(w)
        else:
            if mode == "per-key-other-writer" and n < 2:
                return None
            other = mode == "per-key-other-writer"
            owner_of = sessions.index

            def reread_done(v):
                if type(v) is not dict or not v:
                    stats.error(f"re-read reply {v!r}")
                state["reread_owed"] -= 1

            def on_push(conn, push):
                if len(push) < 2 or push[0] != b"invalidate":
                    stats.error(f"push {push!r}")
                    return
                state["push_frames"] += 1
                keys = push[1]
                if keys is None:
                    stats.error("a flush invalidation")
                    return
                for key in keys:
                    state["push_keys"] += 1
                    s = owner_of.get(key)
                    if s is not None and s % n == conn.index:
                        # The holder reads it again, to keep it cached (and tracked).
                        state["rereads"] += 1
                        state["reread_owed"] += 1
                        conn.send(sessions.hgetall[s], reread_done)
                    else:
                        state["dropped"] += 1

            instances = []
            for i in range(n):
                c = await connect(port, stats, i, on_push)
                if mode != "per-key-untracked":
                    r = await ok(c.call("CLIENT", "TRACKING", "ON", "NOLOOP"), "CLIENT TRACKING")
                    if r != b"OK":
                        raise RuntimeError(f"CLIENT TRACKING answered {r!r}")
                instances.append(c)
            conns.extend(instances)
            trackers = instances
            # Every instance reads its own sessions once: Redis now tracks them for it.
            reads = [instances[i].pipeline([sessions.hgetall[s] for s in range(i, count, n)])
                     for i in range(n)]
            for replies in await asyncio.gather(*reads):
                for v in replies:
                    if type(v) is not dict or len(v) < 2:  # RESP3: HGETALL is a map
                        raise RuntimeError(f"initial HGETALL answered {v!r}")
            head = sha_head(sha_copy, 15)
            check = is_copy_saved
            inflight = {"n": 0}

            def writer_of(j):
                holder = (j % count) % n
                if not other:
                    return holder
                # Never the holder; another one on each pass over the sessions.
                return (holder + 1 + (j // count) % (n - 1)) % n

            def issue():
                j = state["next"]
                state["next"] = j + 1
                inflight["n"] += 1
                # The holder writes on the copy it holds (the script answers with the
                # metadata); another writer holds none (it answers with the whole session).
                held = ""
                if not other:
                    held = sessions.generations[j % count]
                    sessions.generations[j % count] = held + 1
                instances[writer_of(j)].send(
                    write_payload(head, sessions.key_bulks[j % count],
                                  int(time.time() * 1000), j, held), on_write)

            def on_write(v):
                if not check(v):
                    stats.error(f"write reply {v!r}")
                state["done"] += 1
                inflight["n"] -= 1
                if state["next"] < total:
                    issue()
                elif state["done"] == total and not finished.done():
                    finished.set_result(None)

            def start():
                for _ in range(min(window, total)):
                    issue()

        before = await info(ctrl)
        result["tracking_clients"] = int(before.get("tracking_clients", 0))
        result["tracked_keys"] = int(before.get("tracking_total_keys", 0))
        result["tracked_prefixes"] = int(before.get("tracking_total_prefixes", 0))
        tracked = mode in ("broadcast", "per-key", "per-key-other-writer")
        if result["tracking_clients"] != (n if tracked else 0):
            raise RuntimeError(f"{result['tracking_clients']} tracking clients, not {n}")
        if mode in ("per-key", "per-key-other-writer") and result["tracked_keys"] != count:
            raise RuntimeError(f"{result['tracked_keys']} tracked keys, not {count}")
        if mode == "broadcast" and result["tracked_prefixes"] != 1:
            raise RuntimeError(f"{result['tracked_prefixes']} tracked prefixes, not 1")

        # ---- the measured window ----
        busy0 = core_busy()
        wall0, gen0 = time.perf_counter(), time.process_time()
        deadline = time.monotonic() + args.phase_timeout
        start()
        if total:
            await asyncio.wait_for(finished, args.phase_timeout)
        writes_wall = time.perf_counter() - wall0
        # Every push queued before a connection's PONG has been read once the PONG is.
        pings = [c.call("PING") for c in trackers if not c.counting]
        for c in trackers:
            if c.counting:
                c.transport.write(b"*1\r\n$4\r\nPING\r\n")
        for p in pings:
            if await asyncio.wait_for(p, max(0.1, deadline - time.monotonic())) != b"PONG":
                raise RuntimeError("PING did not answer PONG")
        while (any(c.counting and c.pongs < 1 for c in trackers) or state["reread_owed"] > 0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode} n={n}: not quiet after {args.phase_timeout} s")
            if stats.errors and any(c.transport.is_closing() for c in conns):
                raise RuntimeError(f"{mode} n={n}: a connection failed: {stats.samples}")
            await asyncio.sleep(0.001)
        wall = time.perf_counter() - wall0
        gen = time.process_time() - gen0
        after = await info(ctrl)
        busy1 = core_busy()
        # ---- end of the measured window ----

        cpu = after["cpu"] - before["cpu"]
        # CPU the two cores spent on anything but redis-server and this generator (other
        # processes: a compiler, ...): it competes for caches and time slices.
        machine = sum(busy1.get(c, 0.0) - busy0.get(c, 0.0) for c in busy1)
        result["others_util"] = max(0.0, machine - cpu - gen) / wall if wall else 0.0
        if state["done"] != total:
            stats.error(f"{state['done']} writes answered of {total}")
        if mode == "broadcast":
            state["push_frames"] = sum(c.pushes for c in trackers)
            state["push_keys"] = sum(c.keys for c in trackers)
            # Redis builds one message per event-loop turn and sends it to every BCAST
            # client, and no session is written twice in a turn: each connection must have
            # read the name of every written key, and the same pushes.
            if {(c.pushes, c.keys) for c in trackers} != {(trackers[0].pushes, total)}:
                stats.error(f"broadcast connections read {sorted({(c.pushes, c.keys) for c in trackers})} "
                            f"(pushes, keys), expected the same and {total} keys each")
        elif trackers:
            if sum(c.pushes for c in trackers) != state["push_frames"]:
                stats.error("push count mismatch")
        result.update(
            writes=state["done"], cpu_s=cpu, us_per_write=cpu / max(1, total) * 1e6,
            writes_per_s=total / writes_wall if writes_wall else 0.0, wall_s=wall,
            redis_util=cpu / wall if wall else 0.0, gen_util=gen / wall if wall else 0.0,
            pushes=state["push_frames"], push_keys=state["push_keys"],
            rereads=state["rereads"], dropped=state["dropped"],
            out_bytes=int(after["total_net_output_bytes"]) - int(before["total_net_output_bytes"]),
            in_bytes=int(after["total_net_input_bytes"]) - int(before["total_net_input_bytes"]),
            errors=stats.errors, error_samples=list(stats.samples))
        return result
    finally:
        stats.closing = True
        for c in conns:
            if c.transport is not None:
                c.transport.close()
        await asyncio.sleep(0)


def core_busy():
    """Busy seconds per core since boot, from /proc/stat (empty if unreadable)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    name, *v = line.split()
                    v = [int(x) for x in v]
                    # user nice system idle iowait irq softirq steal ...
                    out[name] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick
    except (OSError, IndexError, ValueError):
        pass
    return out


def run_one(args, mode, n, scripts, sessions):
    server = RedisServer(args.redis_core, maxclients=max(n, 1) + args.concurrency + 100)
    try:
        return asyncio.run(asyncio.wait_for(
            measure(args, mode, n, server.port, scripts, sessions), args.config_timeout))
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------
# Main


def pin(args):
    cpus = sorted(os.sched_getaffinity(0))
    if args.no_pin:
        args.redis_core = None
        return "no pinning (--no-pin)"
    if args.redis_core not in cpus or args.client_core not in cpus or args.redis_core == args.client_core:
        raise SystemExit(f"cores {args.redis_core}/{args.client_core} not usable (available: {cpus}); "
                         "pick others or pass --no-pin")
    if not shutil.which("taskset"):
        raise SystemExit("taskset not found (util-linux); pass --no-pin to run without pinning")
    os.sched_setaffinity(0, {args.client_core})
    return (f"redis-server pinned to core {args.redis_core} (taskset -c {args.redis_core}), "
            f"this load generator to core {args.client_core} (sched_setaffinity)")


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            raise SystemExit(f"need {needed} file descriptors, the hard limit is {hard}")


def fmt_ratio(value, base):
    return f"{value / base:.2f}×" if base else "n/a"


def main():
    p = argparse.ArgumentParser(
        description="Redis CPU per session write (INFO cpu) with N cache-holding instances: "
                    "no cache, BCAST tracking, per-key tracking (sticky and non-sticky writers).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--instances", default="1,10,100,400",
                   help="comma-separated instance counts")
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated, of: " + ", ".join(MODES + DIAGNOSTIC_MODES))
    p.add_argument("--sessions", type=int, default=10_000, help="session hashes prepared per server")
    p.add_argument("--writes", type=int, default=100_000, help="measured writes per configuration")
    p.add_argument("--concurrency", type=int, default=32,
                   help="writes in flight (writer connections in none/broadcast)")
    p.add_argument("--rounds", type=int, default=3,
                   help="runs of each configuration, modes alternating (medians shown)")
    p.add_argument("--redis-core", type=int, default=0, help="the core redis-server runs on")
    p.add_argument("--client-core", type=int, default=1, help="the core this generator runs on")
    p.add_argument("--no-pin", action="store_true", help="run without CPU pinning")
    p.add_argument("--phase-timeout", type=float, default=180.0,
                   help="seconds allowed for one write phase")
    p.add_argument("--config-timeout", type=float, default=300.0,
                   help="seconds allowed for one configuration, setup included")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="no configuration starts after this many seconds")
    args = p.parse_args()

    counts = [int(x) for x in args.instances.split(",") if x.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES + DIAGNOSTIC_MODES:
            raise SystemExit(f"unknown mode {m!r}")
    if (any(c < 1 for c in counts) or args.sessions < 1 or args.writes < 1
            or args.concurrency < 1 or args.rounds < 1):
        raise SystemExit("instances, sessions, writes, concurrency and rounds must be positive")
    if any(args.sessions % c for c in counts):
        print(f"note: {args.sessions} sessions do not split evenly over every instance count",
              flush=True)
    if args.concurrency > args.sessions:
        raise SystemExit("more writes in flight than sessions: two could hit one session")
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server not found")
    raise_fd_limit(max(counts) + args.concurrency + 200)
    pinning = pin(args)
    scripts = load_scripts()
    sessions = Sessions(args.sessions)
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()

    print(f"# Redis CPU per session write ({version})")
    print(f"{pinning}; {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(f"{args.sessions} sessions (':m', ':u', cart ~100 B JSON, csrf, locale; TTL 1 day), "
          f"{args.writes} writes per configuration, {args.concurrency} in flight, "
          f"{args.rounds} round(s); a fresh redis-server for each configuration")
    print(f"write script: {LUA_DIR.relative_to(LUA_DIR.parents[3])}/common.lua + change_set.lua + apply.lua "
          "(EVALSHA; change set: set 'cart'); per-key writes use the writer's copy "
          "(+ HGET of its metadata in the script; HGETALL when the writer holds no copy)")
    print(flush=True)

    began = time.monotonic()
    results = collections.defaultdict(list)
    failed = []
    contended = []
    for n in counts:
        for r in range(args.rounds):
            for mode in modes:
                if time.monotonic() - began > args.max_seconds:
                    raise SystemExit(f"stopped: over --max-seconds {args.max_seconds}")
                res = run_one(args, mode, n, scripts, sessions)
                if res is None:
                    print(f"n={n:4} {mode:21} n/a (needs at least 2 instances)", flush=True)
                    continue
                results[(n, mode)].append(res)
                print(f"n={n:4} {mode:21} {res['us_per_write']:8.2f} µs/write  "
                      f"{res['writes_per_s']:8.0f} writes/s  pushes {res['pushes']:>9}  "
                      f"keys {res['push_keys']:>10}  re-reads {res['rereads']:>7}  "
                      f"redis {res['redis_util']:.0%} gen {res['gen_util']:.0%} "
                      f"others {res['others_util']:.0%}  "
                      f"errors {res['errors']}  ({res['wall_s']:.1f} s)"
                      + ("  CONTENDED" if res["others_util"] > CONTENDED else ""), flush=True)
                if res["others_util"] > CONTENDED:
                    contended.append(f"n={n} {mode} ({res['others_util']:.0%})")
                if res["errors"]:
                    failed.append((n, mode, res["errors"], res["error_samples"]))

    def med(n, mode, field):
        rs = results.get((n, mode))
        return statistics.median(r[field] for r in rs) if rs else None

    print()
    print("| instances | none µs/write | broadcast µs/write (× none) | per-key µs/write (× none) "
          "| per-key-other-writer µs/write (× none) |")
    print("|---:|---:|---:|---:|---:|")
    for n in counts:
        base = med(n, "none", "us_per_write")
        cells = [f"{base:.2f}" if base is not None else "n/a"]
        for mode in MODES[1:]:
            v = med(n, mode, "us_per_write")
            if v is None:
                cells.append("n/a")
            else:
                cells.append(f"{v:.2f} ({fmt_ratio(v, base)})" if base else f"{v:.2f}")
        print(f"| {n} | " + " | ".join(cells) + " |")

    print()
    print("| instances | mode | µs/write | × none | writes/s | invalidation pushes | keys in pushes "
          "| re-reads | Redis out bytes/write | Redis CPU busy | generator CPU busy "
          "| other processes' CPU | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in counts:
        base = med(n, "none", "us_per_write")
        for mode in modes:
            if (n, mode) not in results:
                continue
            v = med(n, mode, "us_per_write")
            print(f"| {n} | {mode} | {v:.2f} | {fmt_ratio(v, base)} "
                  f"| {med(n, mode, 'writes_per_s'):,.0f} | {med(n, mode, 'pushes'):,.0f} "
                  f"| {med(n, mode, 'push_keys'):,.0f} | {med(n, mode, 'rereads'):,.0f} "
                  f"| {med(n, mode, 'out_bytes') / args.writes:,.0f} "
                  f"| {med(n, mode, 'redis_util'):.0%} | {med(n, mode, 'gen_util'):.0%} "
                  f"| {med(n, mode, 'others_util'):.0%} "
                  f"| {sum(r['errors'] for r in results[(n, mode)])} |")
    nones = [r["us_per_write"] for n in counts for r in results.get((n, "none"), [])]
    if len(nones) > 1:
        print(f"\nnone across its {len(nones)} runs (the noise floor): "
              f"{min(nones):.2f}–{max(nones):.2f} µs/write")
    if contended:
        print(f"\nmeasured while other processes used more than {CONTENDED:.0%} of a core "
              f"(less trustworthy; rerun on a quiet machine): {', '.join(contended)}")
    print(f"\ntotal time {time.monotonic() - began:.0f} s")
    if failed:
        for n, mode, count, samples in failed:
            for stream in (sys.stdout, sys.stderr):
                print(f"FAILED: n={n} {mode}: {count} errors, e.g. {samples}", file=stream)
        sys.exit(1)


if __name__ == "__main__":
    main()
