#!/usr/bin/env python3
"""Tests/stress/kv.py: a small client (standard library only) that writes
known data into redis or memcached on 127.0.0.1 and checks it afterwards.

  kv.py redis-fill PORT N           N strings swm:s:<i> (1 B .. 300 KiB, derived
                                    from i), N/100 hashes, lists and sets
  kv.py redis-check PORT N SAMPLE LENGTHS
                                    SAMPLE of those strings and every 10th
                                    hash/list/set read back and compared; in
                                    a sample of redis-benchmark's key:*
                                    strings each length must be one of
                                    LENGTHS (its -d values, comma-separated)
                                    and all values of a length equal
  kv.py memcached PORT N CLIENTS    CLIENTS threads, each sets, reads back
                                    (multi-get), overwrites and deletes N keys
                                    of its own with known values
  kv.py free-port                   prints a free TCP port on 127.0.0.1

Prints one line "ok ..." or "error ..." and exits 0 or 1.
"""
import hashlib
import random
import socket
import sys
import threading

HOST = "127.0.0.1"


def value(i, salt=b""):
    """The known value of key i: 1 byte to 300 KiB, mostly small."""
    h = hashlib.sha256(salt + str(i).encode()).digest()
    r = h[0]
    if r < 200:
        n = 1 + (int.from_bytes(h[1:3], "little") % 512)
    elif r < 250:
        n = 512 + (int.from_bytes(h[1:4], "little") % 16384)
    else:
        n = 16384 + (int.from_bytes(h[1:4], "little") % (300 * 1024))
    block = h * (n // len(h) + 1)
    return block[:n]


# ---------------------------------------------------------------- redis
class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=60)
        self.f = self.sock.makefile("rb")

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, int):
                a = str(a).encode()
            elif isinstance(a, str):
                a = a.encode()
            out.append(b"$%d\r\n" % len(a))
            out.append(a)
            out.append(b"\r\n")
        return b"".join(out)

    def read(self):
        line = self.f.readline()
        if not line:
            raise IOError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise IOError("redis error: " + rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        raise IOError("bad reply %r" % line)

    def pipeline(self, cmds):
        self.sock.sendall(b"".join(self.encode(*c) for c in cmds))
        return [self.read() for _ in cmds]

    def call(self, *args):
        return self.pipeline([args])[0]


def redis_fill(port, n):
    r = Redis(port)
    batch = []
    for i in range(n):
        batch.append(("SET", "swm:s:%d" % i, value(i)))
        if i % 100 == 0:
            j = i // 100
            batch.append(("HSET", "swm:h:%d" % j) + tuple(
                x for k in range(20) for x in ("f%d" % k, value(j * 20 + k, b"h"))))
            batch.append(("RPUSH", "swm:l:%d" % j) + tuple(value(j * 50 + k, b"l")[:64] for k in range(50)))
            batch.append(("SADD", "swm:t:%d" % j) + tuple("m%d" % (j * 30 + k) for k in range(30)))
        if len(batch) >= 500:
            for rep in r.pipeline(batch):
                if rep != "OK" and not isinstance(rep, int):
                    raise IOError("unexpected reply %r" % rep)
            batch = []
    if batch:
        r.pipeline(batch)
    print("ok filled %d strings and %d hashes, lists and sets" % (n, (n + 99) // 100))


def redis_check(port, n, sample, lengths):
    r = Redis(port)
    rnd = random.Random(16)
    idx = sorted(rnd.sample(range(n), min(sample, n)))
    bad = []
    for start in range(0, len(idx), 200):
        part = idx[start:start + 200]
        reps = r.pipeline([("GET", "swm:s:%d" % i) for i in part])
        for i, rep in zip(part, reps):
            if rep != value(i):
                bad.append("swm:s:%d" % i)
    structures = 0
    for j in range(0, (n + 99) // 100, 10):
        structures += 1
        h = r.call("HGETALL", "swm:h:%d" % j)
        want = {("f%d" % k).encode(): value(j * 20 + k, b"h") for k in range(20)}
        if dict(zip(h[0::2], h[1::2])) != want:
            bad.append("swm:h:%d" % j)
        lst = r.call("LRANGE", "swm:l:%d" % j, 0, -1)
        if lst != [value(j * 50 + k, b"l")[:64] for k in range(50)]:
            bad.append("swm:l:%d" % j)
        members = set(r.call("SMEMBERS", "swm:t:%d" % j))
        if members != {("m%d" % (j * 30 + k)).encode() for k in range(30)}:
            bad.append("swm:t:%d" % j)
    # redis-benchmark's strings: key:<12 digits>; each run fills every value
    # with one buffer of its -d size, so all values of one length are equal
    seen = 0
    by_len = {}
    cursor = "0"
    while seen < 300:
        cursor, keys = r.call("SCAN", cursor, "MATCH", "key:*", "COUNT", 1000)
        cursor = cursor.decode()
        if keys:
            types = r.pipeline([("TYPE", k) for k in keys])
            strings = [k for k, t in zip(keys, types) if t == "string"]
            if strings:
                for k, v in zip(strings, r.pipeline([("GET", k) for k in strings])):
                    seen += 1
                    if v is None or len(v) not in lengths:
                        bad.append("%s (%s bytes)" % (k.decode(), None if v is None else len(v)))
                    else:
                        by_len.setdefault(len(v), set()).add(v)
        if cursor == "0":
            break
    for n, vals in sorted(by_len.items()):
        if len(vals) != 1:
            bad.append("%d different values of %d bytes among key:*" % (len(vals), n))
    if bad:
        print("error %d values differ: %s" % (len(bad), " ".join(bad[:10])))
        return 1
    print("ok %d strings, %d hashes/lists/sets and %d benchmark strings as written"
          % (len(idx), structures * 3, seen))
    return 0


# ---------------------------------------------------------------- memcached
class Memcached:
    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=60)
        self.f = self.sock.makefile("rb")

    def expect(self, want):
        line = self.f.readline()
        if line != want:
            raise IOError("expected %r, got %r" % (want, line))


def memcached_client(port, n, cid, errors, counts):
    try:
        m = Memcached(port)
        keys = ["swm:%d:%d" % (cid, i) for i in range(n)]
        for rnd in range(2):
            salt = b"%d:%d" % (cid, rnd)
            # pipelined sets, 100 at a time
            for s in range(0, n, 100):
                part = range(s, min(s + 100, n))
                out = []
                for i in part:
                    v = value(i, salt)[:200 * 1024]
                    out.append(b"set %s 0 0 %d\r\n%s\r\n" % (keys[i].encode(), len(v), v))
                m.sock.sendall(b"".join(out))
                for _ in part:
                    m.expect(b"STORED\r\n")
            # multi-get, 50 keys at a time
            for s in range(0, n, 50):
                part = list(range(s, min(s + 50, n)))
                m.sock.sendall(b"get " + b" ".join(keys[i].encode() for i in part) + b"\r\n")
                got = {}
                while True:
                    line = m.f.readline()
                    if line == b"END\r\n":
                        break
                    _, k, _, ln = line.split()
                    got[k.decode()] = m.f.read(int(ln) + 2)[:-2]
                for i in part:
                    if got.get(keys[i]) != value(i, salt)[:200 * 1024]:
                        errors.append("client %d key %s" % (cid, keys[i]))
                counts[cid] += len(part)
        for s in range(0, n, 100):
            part = range(s, min(s + 100, n))
            m.sock.sendall(b"".join(b"delete %s\r\n" % keys[i].encode() for i in part))
            for _ in part:
                m.expect(b"DELETED\r\n")
    except Exception as e:  # noqa: BLE001 (any failure is the test's result)
        errors.append("client %d: %s" % (cid, e))


def memcached(port, n, clients):
    errors, counts = [], [0] * clients
    threads = [threading.Thread(target=memcached_client, args=(port, n, c, errors, counts))
               for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m = Memcached(port)
    m.sock.sendall(b"stats\r\n")
    stats = {}
    while True:
        line = m.f.readline()
        if line in (b"END\r\n", b""):
            break
        parts = line.split()
        if len(parts) == 3:
            stats[parts[1].decode()] = parts[2].decode()
    ev = stats.get("evictions", "?")
    if errors:
        print("error %d (evictions %s): %s" % (len(errors), ev, "; ".join(errors[:5])))
        return 1
    print("ok %d clients, %d values read back as written (evictions %s, curr_items %s)"
          % (clients, sum(counts), ev, stats.get("curr_items", "?")))
    return 0


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    print(s.getsockname()[1])
    s.close()


def main(argv):
    try:
        if argv[1] == "redis-fill":
            redis_fill(int(argv[2]), int(argv[3]))
            return 0
        if argv[1] == "redis-check":
            return redis_check(int(argv[2]), int(argv[3]), int(argv[4]),
                               {int(x) for x in argv[5].split(",")})
        if argv[1] == "memcached":
            return memcached(int(argv[2]), int(argv[3]), int(argv[4]))
        if argv[1] == "free-port":
            free_port()
            return 0
    except (IOError, OSError, ValueError) as e:
        print("error %s" % e)
        return 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
