#!/usr/bin/env python3
"""kds-decode.py: an independent decoder of a kds stream directory.

Written from kds-stream(5) (and spec/kds-spec.md before it) with struct only, so
that the C code and its documentation are checked against each other, not
against themselves.  Checksums are XXH3_64bits_withSeed from libxxhash.so.0
through ctypes; compressed segments (SEQ.zseg) are decompressed with
ZSTD_decompress from libzstd.so.1, also through ctypes.

    kds-decode.py STREAM            every record, one JSON object a line:
        {"shard":0,"seq":"100000000000000000001","arrival":1764324000123,
         "key":"k","data":"<base64>","segment":"100...001.seg","offset":48}
      and checks everything the spec promises of a stream at rest: meta and
      its checksum, segment names and headers, every frame, contiguous
      counters, non-decreasing arrival times, the index entries and the tail;
      compressed segments block by block, and their .zidx entries.  When a
      segment is there both plain and compressed, the two must hold the same
      bytes; records are listed once, from SEQ.seg.
    kds-decode.py --lax-index STREAM
      the same, but an index may lack entries (a crash between a batch and
      its index entries leaves a hole; kds-stream(5) lets the index be
      short or stale).  Entries that are there must still be right.
    kds-decode.py --meta STREAM     meta as one JSON object
    kds-decode.py --frames SEGMENT  "offset length counter" per whole frame
      (layout only: needs no checksum, stops at the first incomplete frame)
    kds-decode.py --blocks ZSEG     "offset segment-offset R C first-counter"
      per block of a compressed segment, checked
    kds-decode.py --inflate ZSEG    the SEQ.seg that ZSEG holds, on stdout
    kds-decode.py --damage ZSEG OFFSET
      flip the last byte of the frame at segment offset OFFSET inside its
      block, then compress and seal the block again: every checksum but
      the frame's holds
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
77 when libxxhash (or, for a compressed segment, libzstd) cannot be loaded
(a test should skip).
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
ZSEG_HEADER = struct.Struct("<6sH48sQqqQQ")  # magic ver seghdr last first-arr last-arr size sum
ZBLOCK = struct.Struct("<QQqIIQQ")           # seg-off first arrival R C csum sum
ZIDX_ENTRY = struct.Struct("<QqQIIQ")        # counter arrival block inner res sum
assert SEG_HEADER.size == 48 and FRAME_HEAD.size == 32
assert INDEX_ENTRY.size == 32 and TAIL.size == 64
assert ZSEG_HEADER.size == 96 and ZBLOCK.size == 48 and ZIDX_ENTRY.size == 40
BLOCK_TARGET = 128 * 1024

MAX_RECORD = 1024 * 1024
SEQ_SCALE = 10 ** 20
INDEX_INTERVAL = 32 * 1024
HASH_MAX = 2 ** 128 - 1
BLOCK_MAX = BLOCK_TARGET - 1 + 32 + MAX_RECORD

_xxh = None
_zstd = None


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


def zstd_decompress(data, size):
    """The content of one zstd frame, which must be size bytes."""
    global _zstd
    if _zstd is None:
        try:
            lib = ctypes.CDLL("libzstd.so.1")
            lib.ZSTD_decompress.restype = ctypes.c_size_t
            lib.ZSTD_decompress.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                            ctypes.c_char_p, ctypes.c_size_t]
            lib.ZSTD_isError.restype = ctypes.c_uint
            lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
            lib.ZSTD_getFrameContentSize.restype = ctypes.c_ulonglong
            lib.ZSTD_getFrameContentSize.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        except (OSError, AttributeError) as e:
            print("kds-decode: libzstd.so.1: %s" % e, file=sys.stderr)
            sys.exit(77)
        _zstd = lib
    data = bytes(data)
    declared = _zstd.ZSTD_getFrameContentSize(data, len(data))
    if declared < 2 ** 64 - 2 and declared != size:
        return None, "zstd frame declares %d bytes" % declared
    out = ctypes.create_string_buffer(max(size, 1))
    n = _zstd.ZSTD_decompress(out, size, data, len(data))
    if _zstd.ZSTD_isError(n):
        return None, "zstd error"
    if n != size:
        return None, "decompresses to %d bytes" % n
    return out.raw[:size], None


def zstd_compress(data):
    zstd_decompress(b"", 0)         # loads the library
    lib = _zstd
    lib.ZSTD_compressBound.restype = ctypes.c_size_t
    lib.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
    lib.ZSTD_compress.restype = ctypes.c_size_t
    lib.ZSTD_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                  ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    cap = lib.ZSTD_compressBound(len(data))
    out = ctypes.create_string_buffer(cap)
    n = lib.ZSTD_compress(out, cap, bytes(data), len(data), 3)
    assert not lib.ZSTD_isError(n)
    return out.raw[:n]


def damage(path, seg_off):
    with open(path, "rb") as f:
        data = f.read()
    salt = SEG_HEADER.unpack_from(data, 8)[5]
    for off, boff, R, C, first in inflate(path)[1]:
        if boff <= seg_off < boff + R:
            break
    else:
        bad(path, None, "no block holds segment offset %d" % seg_off)
    content, _ = zstd_decompress(data[off + 48: off + 48 + C], R)
    content = bytearray(content)
    pos = seg_off - boff
    L = struct.unpack_from("<I", content, pos + 8)[0]
    content[pos + L - 1] ^= 0xff
    payload = zstd_compress(content)
    head = struct.pack("<QQqII", boff, first, ZBLOCK.unpack_from(data, off)[2], R,
                       len(payload))
    head += struct.pack("<Q", xxh3(payload, salt))
    head += struct.pack("<Q", xxh3(head, salt))
    with open(path, "wb") as f:
        f.write(data[:off] + head + payload + data[off + 48 + C:])


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
    optional = {"compress-after"}
    for n, line in enumerate(lines[:-1], 1):
        text = line.decode("ascii")
        f = text.split(" ")
        if f[0] in single or f[0] in optional:
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


def seg_files(shard_dir, number, compressed=None):
    """Segment names of a shard, checked and sorted by sequence number:
    (first counter, SEQ.seg name); the name is SEQ.zseg when only that is
    there.  compressed, a dict, gets first counter -> SEQ.zseg name."""
    out = {}
    for name in os.listdir(shard_dir):
        if not (name.endswith(".seg") or name.endswith(".zseg")):
            continue
        m = re.fullmatch(r"([1-9][0-9]{20,})\.(z?seg)", name)
        if not m:
            bad(os.path.join(shard_dir, name), None, "bad segment name")
        seq = int(m.group(1))
        if seq // SEQ_SCALE != number + 1:
            bad(os.path.join(shard_dir, name), None, "segment of another shard")
        first = seq % SEQ_SCALE
        if m.group(2) == "zseg":
            if compressed is not None:
                compressed[first] = name
            out.setdefault(first, name)
        else:
            out[first] = name
    return sorted(out.items())


def inflate(path, number=None, first=None):
    """Check a compressed segment (kds-stream(5), COMPRESSED SEGMENTS) and
    return (the SEQ.seg it holds, [blocks], [(offset, raw offset, counter)
    of the first frame of each block])."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 96:
        bad(path, 0, "short compressed header (%d bytes)" % len(data))
    magic, ver, seghdr, last, first_arr, last_arr, size, s = ZSEG_HEADER.unpack_from(data)
    if magic != b"KDSZSG":
        bad(path, 0, "bad magic")
    if ver != 1:
        bad(path, 6, "version %d" % ver)
    if xxh3(data[:88], 0) != s:
        bad(path, 88, "bad header checksum")
    smagic, sver, hshard, hfirst, _created, salt, ssum = SEG_HEADER.unpack_from(seghdr)
    if smagic != b"KDSSEG" or sver != 1 or xxh3(seghdr[:40], 0) != ssum:
        bad(path, 8, "bad segment header inside")
    if number is not None and hshard != number:
        bad(path, 16, "shard %d" % hshard)
    if first is not None and hfirst != first:
        bad(path, 24, "first counter %d, name says %d" % (hfirst, first))
    raw = bytearray(seghdr)
    blocks = []
    off = 96
    counter = hfirst
    while off < len(data):
        if len(data) - off < 48:
            bad(path, off, "short block header")
        seg_off, bfirst, barr, R, C, csum, hsum = ZBLOCK.unpack_from(data, off)
        if xxh3(data[off: off + 40], salt) != hsum:
            bad(path, off, "bad block header checksum")
        if seg_off != len(raw):
            bad(path, off, "segment offset %d, expected %d" % (seg_off, len(raw)))
        if bfirst != counter:
            bad(path, off, "first counter %d, expected %d" % (bfirst, counter))
        if R < 33 or R > BLOCK_MAX or C < 1 or off + 48 + C > len(data):
            bad(path, off, "bad lengths R %d C %d" % (R, C))
        payload = data[off + 48: off + 48 + C]
        if xxh3(payload, salt) != csum:
            bad(path, off, "bad block checksum")
        content, why = zstd_decompress(payload, R)
        if content is None:
            bad(path, off, why)
        # whole frames; none starts at or past the 128 KiB target
        pos = 0
        n = 0
        farr = None
        while pos < R:
            if pos >= BLOCK_TARGET:
                bad(path, off, "a frame starts at %d of the block, past 128 KiB" % pos)
            if R - pos < 12:
                bad(path, off, "frame runs past its block")
            L = struct.unpack_from("<I", content, pos + 8)[0]
            if L < 33 or pos + L > R:
                bad(path, off, "frame runs past its block")
            if farr is None:
                farr = struct.unpack_from("<q", content, pos + 24)[0]
            pos += L
            n += 1
        if farr != barr:
            bad(path, off, "first arrival %d, its frame's is %d" % (barr, farr))
        blocks.append((off, seg_off, R, C, bfirst))
        raw += content
        counter += n
        off += 48 + C
    if not blocks:
        bad(path, 96, "no block")
    for b in blocks[:-1]:
        if b[2] < BLOCK_TARGET:
            bad(path, b[0], "a block other than the last ends below 128 KiB (%d)" % b[2])
    if len(raw) != size:
        bad(path, 80, "segment size %d, the blocks hold %d" % (size, len(raw)))
    if last != counter - 1:
        bad(path, 56, "last counter %d, the frames end at %d" % (last, counter - 1))
    frs = list(frames_of(raw, 48, salt, path, hfirst, None))
    if frs[0][4] != first_arr or frs[-1][4] != last_arr:
        bad(path, 64, "first and last arrival (%d, %d), the frames' are (%d, %d)"
            % (first_arr, last_arr, frs[0][4], frs[-1][4]))
    return bytes(raw), blocks, frs


def check_zindex(zidx_path, zseg_path, blocks, frs):
    """Entries for the first frame of each block and for the first frame at
    or after each 32 KiB boundary of the segment, exactly, in order."""
    with open(zidx_path, "rb") as f:
        raw = f.read()
    if len(raw) % ZIDX_ENTRY.size:
        bad(zidx_path, len(raw) - len(raw) % ZIDX_ENTRY.size, "short entry")
    starts = {b[1]: b for b in blocks}
    want = []
    prev = None
    bi = -1
    for fr in frs:
        off = fr[0]
        while bi + 1 < len(blocks) and blocks[bi + 1][1] <= off:
            bi += 1
        b = blocks[bi]
        if off in starts or off // INDEX_INTERVAL != prev // INDEX_INTERVAL:
            want.append((fr[3], fr[4], b[0], off - b[1]))
        prev = off
    got = []
    for i in range(0, len(raw), ZIDX_ENTRY.size):
        counter, arrival, boff, inner, res, s = ZIDX_ENTRY.unpack_from(raw, i)
        if xxh3(raw[i: i + 32], 0) != s:
            bad(zidx_path, i, "bad entry checksum")
        if res != 0:
            bad(zidx_path, i + 28, "reserved %d" % res)
        got.append((counter, arrival, boff, inner))
    if got != want:
        for i, (g, w) in enumerate(zip(got + [None] * len(want), want + [None] * len(got))):
            if g != w:
                bad(zidx_path, i * ZIDX_ENTRY.size, "entry %s, expected %s (of %s)"
                    % (g, w, zseg_path))


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
        zsegs = {}
        segs = seg_files(sdir, number, zsegs)
        if zsegs and "compress-after" not in meta:
            bad(os.path.join(sdir, zsegs[min(zsegs)]), None,
                "a compressed segment in a stream whose meta has no compress-after")
        expect = 1
        prev_arrival = None
        last = (None, None)
        last_off = 0
        last_has = False
        last_created = None
        for i, (first, name) in enumerate(segs):
            path = os.path.join(sdir, name)
            if first in zsegs:
                zpath = os.path.join(sdir, zsegs[first])
                zraw, blocks, zfrs = inflate(zpath, number, first)
                if sh["state"] == "open" and i == len(segs) - 1:
                    bad(zpath, None, "the active segment of an open shard is compressed")
                zidx = zpath[:-5] + ".zidx"
                if os.path.exists(zidx):
                    check_zindex(zidx, zpath, blocks, zfrs)
            if name.endswith(".zseg"):
                data = zraw
            else:
                with open(path, "rb") as f:
                    data = f.read()
                if first in zsegs and data != zraw:
                    bad(zpath, None, "does not hold what %s holds" % name)
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
            # kds-stream(5) RETENTION: expired segments are removed
            # oldest first, so the first one left may start anywhere.
            if i == 0:
                expect = first
            if first != expect:
                bad(path, None, "first counter %d, expected %d" % (first, expect))
            frs = list(frames_of(data, 48, salt, path, first, prev_arrival))
            last_created = created
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
            if name.endswith(".seg") and os.path.exists(idx):
                check_index(idx, path, frs, len(data))
            last = (first, len(data))
            last_off = frs[-1][0] if frs else 0
            last_has = bool(frs)
        if sh["state"] == "closed" and sh["end_seq"] is not None:
            if int(sh["end_seq"]) % SEQ_SCALE != expect - 1:
                bad(sdir, None, "end sequence %s, last record %d" % (sh["end_seq"], expect - 1))
        # An empty last segment after records (a roll, or an expiry that
        # removed the segment before it): the tail's arrival is its creation.
        if segs and not last_has:
            prev_arrival = last_created
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
        elif len(argv) == 2 and argv[0] == "--blocks":
            for b in inflate(argv[1])[1]:
                print(*b)
        elif len(argv) == 3 and argv[0] == "--damage":
            damage(argv[1], int(argv[2]))
        elif len(argv) == 2 and argv[0] == "--inflate":
            sys.stdout.buffer.write(inflate(argv[1])[0])
        elif len(argv) == 2 and argv[0] == "--meta":
            print(json.dumps(read_meta(argv[1])))
        elif len(argv) == 5 and argv[0] == "--append":
            append(argv[4], int(argv[1]), os.fsencode(argv[2]),
                   os.fsencode(argv[3]))
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
