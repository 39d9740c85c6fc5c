"""An allocation-heavy, deterministic Python workload for Tests/programs/run.sh.

Builds and churns dicts, lists, strings, bytes and sets of many sizes, then
prints a checksum of everything it computed. The same script run with and
without the allocator preloaded must print the same line.
"""
import hashlib
import random
import sys

rng = random.Random(20240611)
digest = hashlib.sha256()


def feed(*values):
    for v in values:
        digest.update(repr(v).encode())


# 1. dicts of strings, grown and shrunk
table = {}
for i in range(100_000):
    key = "k%07d-%s" % (i, "x" * (i % 37))
    table[key] = [i, str(i) * (i % 11), {"n": i}]
    if i % 3 == 0:
        table.pop("k%07d-%s" % (i // 2, "x" * ((i // 2) % 37)), None)
feed(len(table), sum(v[0] for v in table.values()))

# 2. lists of random-size strings and bytes, sorted and joined
words = ["".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(1, 40))) for _ in range(50_000)]
words.sort()
feed(words[0], words[-1], len("".join(words)))
blobs = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))) for _ in range(10_000)]
feed(hashlib.sha256(b"".join(blobs)).hexdigest())

# 3. large strings and lists: realloc-style growth
s = ""
for i in range(20_000):
    s += "%d," % i
feed(len(s), s[-20:])
big = []
for i in range(500_000):
    big.append(i * i % 1000003)
feed(sum(big), big[123456])
del big

# 4. many small objects with cycles, freed by the collector
import gc
class Node:
    __slots__ = ("value", "next", "payload")
    def __init__(self, value):
        self.value = value
        self.next = None
        self.payload = [value] * (value % 8)
for round_ in range(3):
    nodes = [Node(i) for i in range(50_000)]
    for a, b in zip(nodes, nodes[1:] + nodes[:1]):
        a.next = b
    feed(sum(n.next.value for n in nodes[:1000]))
    del nodes, a, b
    gc.collect()

# 5. sets and dict comprehensions with medium and large buffers
sets = [set(range(i, i + rng.randrange(1, 3000))) for i in range(0, 600_000, 2000)]
union = set().union(*sets)
feed(len(union), min(union), max(union))
index = {w: i for i, w in enumerate(words)}
feed(len(index))
chunks = [bytearray(rng.randrange(1, 1 << 20)) for _ in range(40)]
for c in chunks:
    c[-1] = 7
feed(sum(len(c) for c in chunks), sum(c[-1] for c in chunks))

print("checksum", digest.hexdigest())
sys.stdout.flush()
