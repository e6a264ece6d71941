#!/usr/bin/env python3
"""kds-split.py: a reshard for tests, written from kds-stream(5).

    kds-split.py STREAM SHARD [HASHKEY]     split SHARD at HASHKEY (default:
                                            the middle of its range)
    kds-split.py --merge STREAM SHARD ADJ   merge two adjacent open shards

It takes STREAM/lock, then the parents' tail locks in ascending order, as
the format asks of a meta rewriter; closes the parents at their last
counter (from their tail files, trusted only when they check out), makes
the children (a header-only first segment and a tail whose last arrival is
the parents' latest, the children's floor) and replaces meta atomically.
Prints the children's ids.  Exit 77 when libxxhash cannot be loaded.
"""

import fcntl
import importlib.util
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("kdsdecode",
                                              os.path.join(HERE, "kds-decode.py"))
dec = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dec)
xxh3 = dec.xxh3
SCALE = 10 ** 20


def sid(n):
    return "shardId-%012d" % n


def lock(path):
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def tail_of(stream, n):
    with open(os.path.join(stream, sid(n), "tail"), "rb") as f:
        raw = f.read(64)
    magic, first, end, last, arrival, lastoff, res, csum = dec.TAIL.unpack(raw)
    if magic != b"KDSTAIL1" or csum != xxh3(raw[:56]):
        sys.exit("kds-split: %s/tail: bad tail" % sid(n))
    return last, arrival


def make_child(stream, n, floor_ms):
    d = os.path.join(stream, sid(n))
    os.mkdir(d)
    now = int(time.time() * 1000)
    hdr = struct.pack("<6sHQQqQ", b"KDSSEG", 1, n, 1, now,
                      int.from_bytes(os.urandom(8), "little"))
    hdr += struct.pack("<Q", xxh3(hdr))
    seq = "%d%020d" % (n + 1, 1)
    with open(os.path.join(d, seq + ".seg"), "wb") as f:
        f.write(hdr)
        os.fsync(f.fileno())
    tail = struct.pack("<8sQQQqQQ", b"KDSTAIL1", 1, 48, 0, floor_ms, 0, 0)
    tail += struct.pack("<Q", xxh3(tail))
    with open(os.path.join(d, "tail"), "wb") as f:
        f.write(tail)
        os.fsync(f.fileno())


def write_meta(stream, lines):
    body = "".join(l + "\n" for l in lines)
    body += "checksum %016x\n" % xxh3(body.encode())
    tmp = os.path.join(stream, "meta.tmp")
    with open(tmp, "w") as f:
        f.write(body)
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(stream, "meta"))
    dfd = os.open(stream, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)


def main(argv):
    merge = argv[:1] == ["--merge"]
    if merge:
        argv = argv[1:]
    stream = argv[0]
    parents = [int(argv[1].replace("shardId-", ""))]
    if merge:
        parents.append(int(argv[2].replace("shardId-", "")))
    lk = lock(os.path.join(stream, "lock"))
    meta = dec.read_meta(stream)
    by = {s["number"]: s for s in meta["shards"]}
    for p in parents:
        if p not in by or by[p]["state"] != "open":
            sys.exit("kds-split: %s: not an open shard" % sid(p))
    tails = [lock(os.path.join(stream, sid(p), "tail")) for p in sorted(parents)]
    last = {p: tail_of(stream, p) for p in parents}
    floor_ms = max(a for _, a in last.values())
    nxt = meta["next-shard"]
    with open(os.path.join(stream, "meta")) as f:
        lines = f.read().splitlines()[:-1]
    out, children = [], []
    for l in lines:
        f = l.split(" ")
        if f[0] == "next-shard":
            l = "next-shard %d" % (nxt + (1 if merge else 2))
        elif f[0] == "shard" and int(f[1][8:]) in parents:
            p = int(f[1][8:])
            f[2] = "closed"
            f[8] = "%d%020d" % (p + 1, last[p][0])
            l = " ".join(f)
        out.append(l)
    if merge:
        a, b = by[parents[0]], by[parents[1]]
        if a["end"] + 1 != b["start"]:
            sys.exit("kds-split: shards are not adjacent")
        children.append((nxt, sid(parents[0]), sid(parents[1]), a["start"], b["end"]))
    else:
        s = by[parents[0]]
        key = int(argv[2]) if len(argv) > 2 else (s["start"] + s["end"] + 1) // 2
        children.append((nxt, sid(parents[0]), "-", s["start"], key - 1))
        children.append((nxt + 1, sid(parents[0]), "-", key, s["end"]))
    for n, p, adj, start, end in children:
        make_child(stream, n, floor_ms)
        out.append("shard %s open %s %s %d %d %d%020d -" % (sid(n), p, adj, start, end, n + 1, 1))
    write_meta(stream, out)
    for fd in tails:
        os.close(fd)
    os.close(lk)
    for c in children:
        print(sid(c[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
