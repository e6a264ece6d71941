#!/usr/bin/env python3
"""kds-decode.py: an independent decoder of a kds stream directory.

Written from kds-stream(5) (and spec/kds-spec.md before it) with struct only, so
that the C code and its documentation are checked against each other, not
against themselves.  Checksums are XXH3_64bits_withSeed from libxxhash.so.0
through ctypes.

    kds-decode.py STREAM            every record, one JSON object a line:
        {"shard":0,"seq":"100000000000000000001","arrival":1764324000123,
         "key":"k","data":"<base64>","segment":"100...001.seg","offset":48}
      and checks everything the spec promises of a stream at rest: meta and
      its checksum, segment names and headers, every frame, contiguous
      counters, non-decreasing arrival times, the index entries and the tail.
    kds-decode.py --lax-index STREAM
      the same, but an index may lack entries (a crash between a batch and
      its index entries leaves a hole; kds-stream(5) lets the index be
      short or stale).  Entries that are there must still be right.
    kds-decode.py --meta STREAM     meta as one JSON object
    kds-decode.py --frames SEGMENT  "offset length counter" per whole frame
      (layout only: needs no checksum, stops at the first incomplete frame)
    kds-decode.py --append SHARD KEY DATA STREAM
      append one valid frame (next counter, arrival = last arrival + 1) to
      the shard's last segment, as a writer would, without touching tail.
    kds-decode.py --set SEGMENT OFFSET FIELD VALUE
      forge the frame at OFFSET: set FIELD (len, keylen, flags, counter,
      arrival) to VALUE and seal it again with a valid checksum.
    kds-decode.py --set-header SEGMENT FIELD VALUE
      forge the segment header: set FIELD (version, shard, first, created,
      salt) and seal it again (frames keep their old checksums).

Exit 0 when the stream is as the spec says; 1 with one line
"kds-decode: PATH: offset N: what" at the first thing that is not;
77 when libxxhash cannot be loaded (a test should skip).
"""

import base64
import ctypes
import json
import os
import re
import struct
import sys

SEG_HEADER = struct.Struct("<6sHQQqQQ")     # magic ver shard first created salt sum
FRAME_HEAD = struct.Struct("<QIHHQq")       # sum L K flags counter arrival
INDEX_ENTRY = struct.Struct("<QqQQ")        # counter arrival offset sum
TAIL = struct.Struct("<8sQQQqQQQ")          # magic first end last arrival lastoff res sum
assert SEG_HEADER.size == 48 and FRAME_HEAD.size == 32
assert INDEX_ENTRY.size == 32 and TAIL.size == 64

MAX_RECORD = 1024 * 1024
SEQ_SCALE = 10 ** 20
INDEX_INTERVAL = 32 * 1024
HASH_MAX = 2 ** 128 - 1

_xxh = None


class Bad(Exception):
    pass


def xxh3(data, seed=0):
    global _xxh
    if _xxh is None:
        try:
            lib = ctypes.CDLL("libxxhash.so.0")
            f = lib.XXH3_64bits_withSeed
        except (OSError, AttributeError) as e:
            print("kds-decode: libxxhash.so.0: %s" % e, file=sys.stderr)
            sys.exit(77)
        f.restype = ctypes.c_uint64
        f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
        _xxh = f
    data = bytes(data)
    return _xxh(data, len(data), seed)


def bad(path, off, what):
    if off is None:
        raise Bad("%s: %s" % (path, what))
    raise Bad("%s: offset %d: %s" % (path, off, what))


def read_meta(stream):
    path = os.path.join(stream, "meta")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.endswith(b"\n"):
        bad(path, None, "no final newline")
    lines = raw.split(b"\n")[:-1]
    if not lines or not lines[-1].startswith(b"checksum "):
        bad(path, None, "last line is not checksum")
    body = raw[: len(raw) - len(lines[-1]) - 1]
    want = lines[-1][len(b"checksum "):].decode()
    if not re.fullmatch(r"[0-9a-f]{16}", want):
        bad(path, None, "checksum is not 16 lowercase hex digits")
    got = "%016x" % xxh3(body, 0)
    if got != want:
        bad(path, None, "bad checksum %s, computed %s" % (want, got))
    meta = {"shards": []}
    single = {"kds-stream", "created", "retention", "segment-bytes",
              "segment-age", "next-shard"}
    for n, line in enumerate(lines[:-1], 1):
        text = line.decode("ascii")
        f = text.split(" ")
        if f[0] in single:
            if len(f) != 2 or not re.fullmatch(r"0|[1-9][0-9]*", f[1]):
                bad(path, None, "line %d: bad %s" % (n, f[0]))
            if f[0] in meta:
                bad(path, None, "line %d: %s twice" % (n, f[0]))
            meta[f[0]] = int(f[1])
        elif f[0] == "shard":
            if len(f) != 9:
                bad(path, None, "line %d: shard line has %d fields" % (n, len(f)))
            sid, state, parent, adj, start, end, sseq, eseq = f[1:]
            m = re.fullmatch(r"shardId-([0-9]{12})", sid)
            if not m or state not in ("open", "closed"):
                bad(path, None, "line %d: bad shard line" % n)
            for v in (parent, adj):
                if v != "-" and not re.fullmatch(r"shardId-[0-9]{12}", v):
                    bad(path, None, "line %d: bad parent" % n)
            meta["shards"].append({
                "id": sid, "number": int(m.group(1)), "state": state,
                "parent": None if parent == "-" else parent,
                "adjacent": None if adj == "-" else adj,
                "start": int(start), "end": int(end), "start_seq": sseq,
                "end_seq": None if eseq == "-" else eseq})
        else:
            bad(path, None, "line %d: unknown key %r" % (n, f[0]))
    if lines[0] != b"kds-stream 1":
        bad(path, None, "first line is not 'kds-stream 1'")
    for k in single:
        if k not in meta:
            bad(path, None, "no %s line" % k)
    nums = [s["number"] for s in meta["shards"]]
    if nums != sorted(set(nums)):
        bad(path, None, "shard lines not in ascending order")
    opened = sorted((s for s in meta["shards"] if s["state"] == "open"),
                    key=lambda s: s["start"])
    at = 0
    for s in opened:
        if s["start"] != at or s["end"] < s["start"]:
            bad(path, None, "open shards do not tile the hash key space at %s" % s["id"])
        at = s["end"] + 1
    if at != HASH_MAX + 1:
        bad(path, None, "open shards do not reach 2^128-1")
    for s in meta["shards"]:
        if not re.fullmatch(r"[1-9][0-9]{20,}", s["start_seq"]) or \
                int(s["start_seq"]) // SEQ_SCALE != s["number"] + 1:
            bad(path, None, "%s: start sequence of another shard" % s["id"])
    if meta["next-shard"] <= max(nums, default=-1):
        bad(path, None, "next-shard not above every shard number")
    return meta


def seg_files(shard_dir, number):
    """Segment names of a shard, checked and sorted by sequence number."""
    out = []
    for name in os.listdir(shard_dir):
        if not name.endswith(".seg"):
            continue
        m = re.fullmatch(r"([1-9][0-9]{20,})\.seg", name)
        if not m:
            bad(os.path.join(shard_dir, name), None, "bad segment name")
        seq = int(m.group(1))
        if seq // SEQ_SCALE != number + 1:
            bad(os.path.join(shard_dir, name), None, "segment of another shard")
        out.append((seq % SEQ_SCALE, name))
    out.sort()
    return out


def frames_of(data, start, salt, path, first_counter, prev_arrival,
              check=True):
    """Yield (offset, L, K, counter, arrival, key, data) of every frame."""
    off = start
    expect = first_counter
    while off < len(data):
        if len(data) - off < FRAME_HEAD.size:
            bad(path, off, "incomplete frame header (%d bytes)" % (len(data) - off))
        s, L, K, flags, counter, arrival = FRAME_HEAD.unpack_from(data, off)
        if L < 33 or L > 32 + MAX_RECORD:
            bad(path, off, "bad frame length %d" % L)
        if K < 1 or K > 1024 or 32 + K > L:
            bad(path, off, "bad key length %d" % K)
        if off + L > len(data):
            bad(path, off, "incomplete frame (%d of %d bytes)" % (len(data) - off, L))
        if check:
            got = xxh3(data[off + 8: off + L], salt)
            if got != s:
                bad(path, off, "bad checksum")
        if flags != 0:
            bad(path, off, "flags %d" % flags)
        if counter != expect:
            bad(path, off, "counter %d, expected %d" % (counter, expect))
        if prev_arrival is not None and arrival < prev_arrival:
            bad(path, off, "arrival %d before %d" % (arrival, prev_arrival))
        key = data[off + 32: off + 32 + K]
        try:
            chars = len(key.decode("utf-8"))
        except UnicodeDecodeError:
            bad(path, off, "partition key is not UTF-8")
        if chars > 256:
            bad(path, off, "partition key of %d characters" % chars)
        yield off, L, K, counter, arrival, key, data[off + 32 + K: off + L]
        prev_arrival = arrival
        expect += 1
        off += L


LAX_INDEX = False


def check_index(idx_path, seg_path, frames, seg_len):
    """Every entry valid and pointing at its frame; one entry for the first
    frame at or after each 32 KiB boundary (boundary 0 optional)."""
    with open(idx_path, "rb") as f:
        raw = f.read()
    if len(raw) % INDEX_ENTRY.size:
        bad(idx_path, len(raw) - len(raw) % INDEX_ENTRY.size,
            "short index entry in an index at rest")
    by_off = {fr[0]: fr for fr in frames}
    got = []
    for i in range(0, len(raw), INDEX_ENTRY.size):
        counter, arrival, off, s = INDEX_ENTRY.unpack_from(raw, i)
        if xxh3(raw[i: i + 24], 0) != s:
            bad(idx_path, i, "bad index entry checksum")
        fr = by_off.get(off)
        if fr is None:
            bad(idx_path, i, "entry points at %d, not a frame of %s" % (off, seg_path))
        if fr[3] != counter or fr[4] != arrival:
            bad(idx_path, i, "entry (%d, %d) but frame at %d is (%d, %d)" %
                (counter, arrival, off, fr[3], fr[4]))
        got.append(off)
    if got != sorted(set(got)):
        bad(idx_path, None, "entries not in ascending order")
    want = set()
    offs = [fr[0] for fr in frames]
    b = INDEX_INTERVAL
    j = 0
    while b < seg_len:
        while j < len(offs) and offs[j] < b:
            j += 1
        if j == len(offs):
            break
        want.add(offs[j])
        b += INDEX_INTERVAL
    have = set(got) - ({offs[0]} if offs else set())
    missing = sorted(want - set(got))
    extra = sorted(have - want)
    if missing and not LAX_INDEX:
        bad(idx_path, None, "no entry for the frame at %d" % missing[0])
    if extra:
        bad(idx_path, None, "entry for the frame at %d, not the first after a 32 KiB boundary" % extra[0])


def check_tail(shard_dir, last_seg_first, last_seg_len, last_counter, last_arrival,
               last_frame_off):
    path = os.path.join(shard_dir, "tail")
    if not os.path.exists(path):
        if last_counter:
            bad(path, None, "missing, but the shard holds records")
        return
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) == 0 and not last_counter:
        return                      # an empty lock file before the first put
    if len(raw) != TAIL.size:
        bad(path, None, "%d bytes, not 64" % len(raw))
    magic, first, end, last, arrival, lastoff, _res, s = TAIL.unpack(raw)
    if magic != b"KDSTAIL1":
        bad(path, 0, "bad magic")
    if xxh3(raw[:56], 0) != s:
        bad(path, 56, "bad checksum")
    if last_seg_first is not None:
        if first != last_seg_first:
            bad(path, 8, "active segment %d, last segment is %d" % (first, last_seg_first))
        if end != last_seg_len:
            bad(path, 16, "end offset %d, segment holds %d bytes" % (end, last_seg_len))
    if last != last_counter:
        bad(path, 24, "last counter %d, last frame is %d" % (last, last_counter))
    if last_counter and arrival != last_arrival:
        bad(path, 32, "last arrival %d, last frame's is %d" % (arrival, last_arrival))
    if lastoff != last_frame_off:
        bad(path, 40, "last frame offset %d, the active segment's last frame is at %d"
            % (lastoff, last_frame_off))


def decode_stream(stream, out):
    meta = read_meta(stream)
    for sh in meta["shards"]:
        number = sh["number"]
        sdir = os.path.join(stream, sh["id"])
        if not os.path.isdir(sdir):
            bad(sdir, None, "missing shard directory")
        segs = seg_files(sdir, number)
        expect = 1
        prev_arrival = None
        last = (None, None)
        last_off = 0
        for i, (first, name) in enumerate(segs):
            path = os.path.join(sdir, name)
            with open(path, "rb") as f:
                data = f.read()
            if len(data) < 48:
                bad(path, 0, "short header (%d bytes)" % len(data))
            magic, ver, hshard, hfirst, created, salt, s = SEG_HEADER.unpack_from(data)
            if magic != b"KDSSEG":
                bad(path, 0, "bad magic")
            if ver != 1:
                bad(path, 6, "version %d" % ver)
            if hshard != number:
                bad(path, 8, "shard %d in %s" % (hshard, sh["id"]))
            if hfirst != first:
                bad(path, 16, "first counter %d, name says %d" % (hfirst, first))
            if xxh3(data[:40], 0) != s:
                bad(path, 40, "bad header checksum")
            if first != expect:
                bad(path, None, "first counter %d, expected %d" % (first, expect))
            frs = list(frames_of(data, 48, salt, path, first, prev_arrival))
            if not frs and i != len(segs) - 1:
                bad(path, None, "an earlier segment holds no record")
            for off, L, K, counter, arrival, key, payload in frs:
                out.write(json.dumps({
                    "shard": number, "seq": "%d%020d" % (number + 1, counter),
                    "arrival": arrival, "key": key.decode("utf-8"),
                    "data": base64.b64encode(payload).decode("ascii"),
                    "segment": name, "offset": off}, ensure_ascii=False) + "\n")
            if frs:
                expect = frs[-1][3] + 1
                prev_arrival = frs[-1][4]
            idx = path[:-4] + ".idx"
            if os.path.exists(idx):
                check_index(idx, path, frs, len(data))
            last = (first, len(data))
            last_off = frs[-1][0] if frs else 0
        if sh["state"] == "closed" and sh["end_seq"] is not None:
            if int(sh["end_seq"]) % SEQ_SCALE != expect - 1:
                bad(sdir, None, "end sequence %s, last record %d" % (sh["end_seq"], expect - 1))
        check_tail(sdir, last[0], last[1], expect - 1, prev_arrival, last_off)


def list_frames(path):
    with open(path, "rb") as f:
        data = f.read()
    off = 48
    while off + 32 <= len(data):
        _s, L, _K, _fl, counter, _a = FRAME_HEAD.unpack_from(data, off)
        if L < 33 or off + L > len(data):
            break
        print(off, L, counter)
        off += L


def append(stream, shard, key, payload):
    sdir = os.path.join(stream, "shardId-%012d" % shard)
    segs = seg_files(sdir, shard)
    first, name = segs[-1]
    path = os.path.join(sdir, name)
    with open(path, "rb") as f:
        data = f.read()
    salt = SEG_HEADER.unpack_from(data)[5]
    frs = list(frames_of(data, 48, salt, path, first, None))
    counter = frs[-1][3] + 1 if frs else first
    arrival = frs[-1][4] + 1 if frs else 0
    body = struct.pack("<IHHQq", 32 + len(key) + len(payload), len(key), 0,
                       counter, arrival) + key + payload
    with open(path, "ab") as f:
        f.write(struct.pack("<Q", xxh3(body, salt)) + body)
    print("%d%020d" % (shard + 1, counter))


FRAME_FIELDS = {"len": (8, "<I"), "keylen": (12, "<H"), "flags": (14, "<H"),
                "counter": (16, "<Q"), "arrival": (24, "<q")}
HEADER_FIELDS = {"version": (6, "<H"), "shard": (8, "<Q"), "first": (16, "<Q"),
                 "created": (24, "<q"), "salt": (32, "<Q")}


def set_frame(path, off, field, value):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    salt = SEG_HEADER.unpack_from(data)[5]
    at, fmt = FRAME_FIELDS[field]
    struct.pack_into(fmt, data, off + at, value)
    L = struct.unpack_from("<I", data, off + 8)[0]
    end = min(off + L, len(data))
    struct.pack_into("<Q", data, off, xxh3(data[off + 8: end], salt))
    with open(path, "r+b") as f:
        f.write(data)


def set_header(path, field, value):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    at, fmt = HEADER_FIELDS[field]
    struct.pack_into(fmt, data, at, value)
    struct.pack_into("<Q", data, 40, xxh3(data[:40], 0))
    with open(path, "r+b") as f:
        f.write(data)


def main(argv):
    global LAX_INDEX
    if argv[:1] == ["--lax-index"]:
        LAX_INDEX = True
        argv = argv[1:]
    try:
        if len(argv) == 2 and argv[0] == "--frames":
            list_frames(argv[1])
        elif len(argv) == 2 and argv[0] == "--meta":
            print(json.dumps(read_meta(argv[1])))
        elif len(argv) == 5 and argv[0] == "--append":
            append(argv[4], int(argv[1]), argv[2].encode(), argv[3].encode())
        elif len(argv) == 5 and argv[0] == "--set":
            set_frame(argv[1], int(argv[2]), argv[3], int(argv[4]))
        elif len(argv) == 4 and argv[0] == "--set-header":
            set_header(argv[1], argv[2], int(argv[3]))
        elif len(argv) == 1 and not argv[0].startswith("-"):
            decode_stream(argv[0], sys.stdout)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Bad as e:
        sys.stdout.flush()
        print("kds-decode: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
