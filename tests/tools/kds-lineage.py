#!/usr/bin/env python3
"""kds-lineage.py: shard lineage checks for the reshard tests, written from
KINESIS-FACTS.md and kds-stream(5), not from the C code.

    kds-lineage.py ranges N        the N even ranges of CreateStream,
                                   "start end" a line
    kds-lineage.py open STREAM     the open shards' ranges, by start key
    kds-lineage.py model N OP...   the shard lines of meta after OPs on a
                                   new N-shard stream with no records, each
                                   OP "split:S", "split:S:KEY" or "merge:A:B"
                                   done as AWS's SplitShard and MergeShards
    kds-lineage.py check STREAM    the lineage rules hold (exit 1 otherwise)
    kds-lineage.py depth STREAM    the longest chain of parents of an open shard

Exit 1 with one line on stderr when a rule is broken.
"""

import os
import sys

HMAX = 2 ** 128 - 1
SCALE = 10 ** 20


def fail(msg):
    print("kds-lineage: " + msg, file=sys.stderr)
    sys.exit(1)


def aws_ranges(n):
    h = 2 ** 128 // n
    return [(i * h, HMAX if i == n - 1 else (i + 1) * h - 1) for i in range(n)]


def sid(n):
    return "shardId-%012d" % n


def read_shards(stream):
    shards = []
    with open(os.path.join(stream, "meta")) as f:
        for line in f:
            f = line.split()
            if f[0] != "shard":
                continue
            shards.append({
                "n": int(f[1][8:]), "open": f[2] == "open",
                "parent": None if f[3] == "-" else int(f[3][8:]),
                "adjacent": None if f[4] == "-" else int(f[4][8:]),
                "start": int(f[5]), "end": int(f[6]),
                "sseq": int(f[7]), "eseq": None if f[8] == "-" else int(f[8])})
    return shards


def model(n, ops):
    shards = [{"n": i, "open": True, "parent": None, "adjacent": None,
               "start": s, "end": e} for i, (s, e) in enumerate(aws_ranges(n))]
    for op in ops:
        f = op.split(":")
        if f[0] == "split":
            p = shards[int(f[1])]
            key = int(f[2]) if len(f) > 2 else p["start"] + (p["end"] - p["start"] + 1) // 2
            if not p["open"] or not (p["start"] + 1 < key < p["end"]):
                fail("model: %s breaks a rule" % op)
            p["open"] = False
            for s, e in ((p["start"], key - 1), (key, p["end"])):
                shards.append({"n": len(shards), "open": True, "parent": p["n"],
                               "adjacent": None, "start": s, "end": e})
        elif f[0] == "merge":
            a, b = shards[int(f[1])], shards[int(f[2])]
            if not a["open"] or not b["open"] or a["end"] + 1 != b["start"]:
                fail("model: %s breaks a rule" % op)
            a["open"] = b["open"] = False
            shards.append({"n": len(shards), "open": True, "parent": a["n"],
                           "adjacent": b["n"], "start": a["start"], "end": b["end"]})
        else:
            fail("model: bad op " + op)
    for s in shards:
        print("shard %s %s %s %s %d %d %d%020d %s" % (
            sid(s["n"]), "open" if s["open"] else "closed",
            "-" if s["parent"] is None else sid(s["parent"]),
            "-" if s["adjacent"] is None else sid(s["adjacent"]),
            s["start"], s["end"], s["n"] + 1, 1,
            "-" if s["open"] else "%d%020d" % (s["n"] + 1, 0)))


def check(stream):
    shards = read_shards(stream)
    by = {s["n"]: s for s in shards}
    opened = sorted((s for s in shards if s["open"]), key=lambda s: s["start"])
    at = 0
    for s in opened:
        if s["start"] != at:
            fail("%s: open shards leave a gap or overlap at %d" % (sid(s["n"]), at))
        at = s["end"] + 1
    if at != HMAX + 1:
        fail("open shards end at %d, not 2^128-1" % (at - 1))
    for s in shards:
        if s["sseq"] != (s["n"] + 1) * SCALE + 1:
            fail("%s: starting sequence number %d" % (sid(s["n"]), s["sseq"]))
        if s["open"] != (s["eseq"] is None):
            fail("%s: open shard with an end, or closed without" % sid(s["n"]))
        if s["eseq"] is not None and s["eseq"] // SCALE != s["n"] + 1:
            fail("%s: ending sequence number of another shard" % sid(s["n"]))
        for p in (s["parent"], s["adjacent"]):
            if p is None:
                continue
            if p not in by:
                fail("%s: parent %s is not listed" % (sid(s["n"]), sid(p)))
            if by[p]["open"] or p >= s["n"]:
                fail("%s: parent %s is open or not older" % (sid(s["n"]), sid(p)))
            if s["sseq"] <= by[p]["eseq"]:
                fail("%s: starts at or below its parent's end" % sid(s["n"]))
        if s["adjacent"] is not None and s["parent"] is None:
            fail("%s: an adjacent parent without a parent" % sid(s["n"]))
    for p in shards:
        if p["open"]:
            continue
        kids = [s for s in shards if p["n"] in (s["parent"], s["adjacent"])]
        if len(kids) == 2 and all(k["adjacent"] is None for k in kids):
            lo, hi = sorted(kids, key=lambda k: k["n"])
            if not (lo["start"] == p["start"] and lo["end"] + 1 == hi["start"]
                    and hi["end"] == p["end"]):
                fail("%s: split children do not halve its range" % sid(p["n"]))
            if hi["start"] <= p["start"]:
                fail("%s: a split child is empty" % sid(p["n"]))
        elif len(kids) == 1 and kids[0]["adjacent"] is not None:
            k = kids[0]
            a, b = by[k["parent"]], by[k["adjacent"]]
            if not (a["end"] + 1 == b["start"] and k["start"] == a["start"]
                    and k["end"] == b["end"]):
                fail("%s: merge of non-adjacent shards" % sid(k["n"]))
        else:
            fail("%s: closed, with %d children" % (sid(p["n"]), len(kids)))


def depth(stream):
    by = {s["n"]: s for s in read_shards(stream)}

    def d(n):
        s = by[n]
        ps = [p for p in (s["parent"], s["adjacent"]) if p is not None]
        return 1 + max((d(p) for p in ps), default=-1)
    print(max(d(s["n"]) for s in by.values() if s["open"]))


def main(argv):
    if len(argv) == 2 and argv[0] == "ranges":
        for s, e in aws_ranges(int(argv[1])):
            print(s, e)
    elif len(argv) == 2 and argv[0] == "open":
        for s in sorted((s for s in read_shards(argv[1]) if s["open"]),
                        key=lambda s: s["start"]):
            print(s["start"], s["end"])
    elif len(argv) >= 2 and argv[0] == "model":
        model(int(argv[1]), argv[2:])
    elif len(argv) == 2 and argv[0] == "check":
        check(argv[1])
    elif len(argv) == 2 and argv[0] == "depth":
        depth(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
