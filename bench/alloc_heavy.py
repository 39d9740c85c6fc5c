"""alloc_heavy.py: an allocation-heavy Python program for `make bench`.

    python3 alloc_heavy.py [SCALE]

Builds and tears down lots of short- and long-lived objects the way ordinary
Python code does: dicts of records, JSON encode/decode, sorting, string
formatting and splitting, small class instances, tuples in sets, bytes
concatenation and list growth.  The driver runs it with PYTHONMALLOC=malloc
so every object goes through the malloc under test (with the default pymalloc,
objects up to 512 bytes would come from CPython's own arenas instead).

Prints `METRIC seconds <s> s lower` and a checksum so the work can't be
skipped.
"""
import json
import random
import sys
import time


class Node:
    __slots__ = ("key", "value", "next")

    def __init__(self, key, value, nxt):
        self.key = key
        self.value = value
        self.next = nxt


class Record:
    def __init__(self, i, name, tags):
        self.i = i
        self.name = name
        self.tags = tags
        self.extra = {"len": len(name), "even": i % 2 == 0}


def records_and_json(rng, n):
    recs = [
        {
            "id": i,
            "name": "user%06d" % i,
            "tags": [str(j * i % 97) for j in range(i % 9)],
            "score": rng.random(),
            "nested": {"a": i, "b": [i, i + 1, i + 2]},
        }
        for i in range(n)
    ]
    text = json.dumps(recs)
    back = json.loads(text)
    back.sort(key=lambda r: r["score"])
    index = {}
    for r in back:
        index.setdefault(r["name"][-3:], []).append(r)
    return len(text) + len(index)


def strings(rng, n):
    parts = []
    for i in range(n):
        parts.append("%d:%s:%x" % (i, "abc" * (i % 11), rng.getrandbits(40)))
    blob = "\n".join(parts)
    words = blob.replace(":", " ").split()
    counts = {}
    for w in words:
        counts[w[:4]] = counts.get(w[:4], 0) + 1
    upper = [w.upper() for w in words[::3]]
    return len(words) + len(counts) + len(upper)


def objects(rng, n):
    head = None
    for i in range(n):
        head = Node(i, (i, str(i)), head)
    total = 0
    node = head
    while node is not None:
        total += node.key
        node = node.next
    recs = [Record(i, "r%d" % i, [i] * (i % 5)) for i in range(n // 2)]
    keep = [r for r in recs if r.extra["even"]]
    pairs = {(r.i, r.name) for r in keep}
    return total % 1000003 + len(pairs)


def buffers(rng, n):
    chunks = []
    acc = b""
    for i in range(n):
        b = bytes(rng.getrandbits(8) for _ in range(16 + i % 200))
        chunks.append(b)
        if i % 64 == 0:
            acc = b"".join(chunks[-64:])
    grow = []
    for i in range(n * 4):
        grow.append(i)
        if len(grow) > 5000:
            grow = grow[2500:]
    ba = bytearray()
    for c in chunks[: n // 4]:
        ba += c
    return len(acc) + len(grow) + len(ba)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rng = random.Random(12345)
    rounds = max(1, int(round(3 * scale)))
    n = 25000
    t0 = time.perf_counter()
    check = 0
    keep = []
    for r in range(rounds):
        check += records_and_json(rng, n)
        check += strings(rng, n)
        check += objects(rng, n)
        check += buffers(rng, n // 4)
        # some survivors between rounds (long-lived data)
        keep.append({i: str(i) * 3 for i in range(n // 4)})
        if len(keep) > 3:
            keep.pop(0)
    dt = time.perf_counter() - t0
    print("CHECK %d" % check)
    print("METRIC seconds %.6g s lower" % dt)


if __name__ == "__main__":
    main()
