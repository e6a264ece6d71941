#!/usr/bin/env bats
# 80-format: the bytes on disk are kds-stream(5), as an independent decoder
# (tests/tools/kds-decode.py: python3 struct, XXH3 from libxxhash through
# ctypes) reads them; and kds reads what that decoder's encoder writes.

load helper


setup() {
	kds_setup
	fixed_clock
	have_xxhash || skip "libxxhash.so.0 cannot be loaded by python3 ctypes"
}

# corpus N SEED: N jsonl records: unicode keys, binary data of 0..300 bytes,
# now and then a big one (to cross 32 KiB index boundaries) and an
# ExplicitHashKey.
corpus() {
	python3 - "$1" "$2" <<'EOF'
import base64, json, random, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(seed)
alphabet = "abcxyz019-_/ é€😀\u0101\u4e2d"
for i in range(n):
    key = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 40)))
    size = rnd.choice([0, 1, 7, 100, 300]) if rnd.random() < 0.3 else rnd.randint(0, 300)
    if rnd.random() < 0.01:
        size = rnd.randint(20000, 90000)
    r = {"PartitionKey": key, "Data": base64.b64encode(rnd.randbytes(size)).decode()}
    if rnd.random() < 0.1:
        r["ExplicitHashKey"] = str(rnd.randint(0, 2**128 - 1))
    print(json.dumps(r, ensure_ascii=rnd.random() < 0.5))
EOF
}

@test "every frame kds-put wrote decodes to the record put, with its number and time" {
	mkstream s -n 3 --segment-bytes 64K
	for k in 0 1 2 3 4 5; do
		corpus 1500 $k >in.$k
		put_at "$((T + 2 * k)).$((k + 1))25" -i jsonl -o jsonl s <in.$k >ack.$k
	done
	python3 "$DECODE" s >decoded
	python3 - <<'EOF'
import base64, json
T = 1764324000
frames = {}
for line in open("decoded"):
    f = json.loads(line)
    assert f["seq"] not in frames, "sequence number twice: " + f["seq"]
    frames[f["seq"]] = f
total = 0
h = 2**128 // 3
for k in range(6):
    recs = [json.loads(l) for l in open("in.%d" % k)]
    acks = [json.loads(l) for l in open("ack.%d" % k)]
    assert len(recs) == len(acks) == 1500, (len(recs), len(acks))
    arrival = (T + 2 * k) * 1000 + (k + 1) * 100 + 25
    for r, a in zip(recs, acks):
        f = frames[a["SequenceNumber"]]
        assert "shardId-%012d" % f["shard"] == a["ShardId"], (r, a, f)
        assert f["key"] == r["PartitionKey"], (r, f)
        assert f["data"] == r["Data"], (r["PartitionKey"], a)
        assert f["arrival"] == arrival, (f["arrival"], arrival)
        if "ExplicitHashKey" in r:
            assert f["shard"] == min(int(r["ExplicitHashKey"]) // h, 2), (r, f)
        total += 1
assert total == len(frames), (total, len(frames))
EOF
	# several segments, and indexes with entries in them
	[ "$(segs s 0 | wc -l)" -ge 2 ]
	[ -n "$(find s -name '*.idx' -size +0)" ]
}

@test "segment headers: shard, first counter, creation time, salts differ" {
	KDS_NOW=$T mkstream s -n 2 --segment-bytes 4096
	for k in 1 2 3; do
		corpus 200 $k | put_at $((T + k)) -i jsonl s
	done
	python3 "$DECODE" s >/dev/null
	python3 - <<'EOF'
import os, re, struct
T = 1764324000
salts = set()
n = 0
for sh in (0, 1):
    d = "s/shardId-%012d" % sh
    for name in os.listdir(d):
        if not name.endswith(".seg"):
            continue
        seq = int(name[:-4])
        h = open(os.path.join(d, name), "rb").read(48)
        magic, ver, shard, first, created, salt, _ = struct.unpack("<6sHQQqQQ", h)
        assert magic == b"KDSSEG" and ver == 1 and shard == sh, name
        assert seq == (sh + 1) * 10**20 + first, name
        assert created in (T * 1000, (T + 1) * 1000, (T + 2) * 1000, (T + 3) * 1000), created
        salts.add(salt)
        n += 1
assert n >= 6, n
assert len(salts) == n, "segments share a salt"
EOF
}

@test "tail: magic, active segment, end offset, last counter, arrival, last frame" {
	mkstream s
	seq 100 | put_at $T.5 -k k s
	python3 "$DECODE" s >/dev/null
	python3 - "$(last_seg s 0)" <<'EOF'
import os, struct, sys
seg = sys.argv[1]
raw = open("s/shardId-000000000000/tail", "rb").read()
magic, first, end, last, arrival, lastoff, res, _ = struct.unpack("<8sQQQqQQQ", raw)
# 100 frames of key "k" and data "1".."100": 34, 35 or 36 bytes
assert (magic, first, end, last, arrival) == \
    (b"KDSTAIL1", 1, os.path.getsize(seg), 100, 1764324000500), (first, end, last, arrival)
assert lastoff == os.path.getsize(seg) - 36, lastoff
EOF
}

@test "the decoder is not blind: it finds a flipped byte" {
	mkstream s
	seq -f 'rec-%02.0f' 1 20 | kds-put -k k s
	python3 "$DECODE" s >/dev/null
	flip "$(last_seg s 0)" $((48 + 39 * 5 + 33))
	run -1 --separate-stderr python3 "$DECODE" s
	stderr_is "kds-decode: $(last_seg s 0): offset 243: bad checksum"
}

@test "a frame written by the independent encoder is read by kds-get; kds-put follows it" {
	mkstream s
	printf 'a\nb\n' | put_at $T -k k s
	run -0 python3 "$DECODE" --append 0 forged-key forged-data s
	output_is "$(seq_of 0 3)"
	run -0 --separate-stderr kds-get $E --format '%o %k %s %T\n' s
	output_is "$(seq_of 0 1) k a ${T}000
$(seq_of 0 2) k b ${T}000
$(seq_of 0 3) forged-key forged-data $((T * 1000 + 1))"
	run -0 --separate-stderr kds-put -p -k k s <<<"c"
	output_is "shardId-000000000000 $(seq_of 0 4)"
	python3 "$DECODE" s >/dev/null
}

@test "-o jsonl of a forged key that is not UTF-8: still JSON, U+FFFD for each bad byte" {
	have_xxhash || skip "no libxxhash for the encoder"
	mkstream s
	printf 'a\n' | put_at $T -k k s
	python3 "$DECODE" --append 0 $'caf\xc3\xa9' data s >/dev/null
	python3 "$DECODE" --append 0 $'x\xff\xc3' data s >/dev/null
	run -0 --separate-stderr kds-get -o jsonl s
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 3 ]
	keys=$(printf '%s\n' "$output" | python3 -c '
import json, sys
for line in sys.stdin:
    print(ascii(json.loads(line)["PartitionKey"]))')
	[ "$keys" = "'k'
'caf\xe9'
'x\ufffd\ufffd'" ]
}

# forged WHAT FIELD VALUE: frame 3 of 6 (offset 48 + 3 * 39) resealed with
# FIELD = VALUE: kds-get refuses it with WHAT and prints the three before.
forged() {
	rm -rf s
	mkstream s
	seq -f 'rec-%02.0f' 1 6 | put_at $T -k k s
	python3 "$DECODE" --set "$(last_seg s 0)" 165 "$1" "$2"
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: shardId-000000000000/100000000000000000001.seg: offset 165: $3"
	output_is "$(seq -f 'rec-%02.0f' 1 3)"
}

@test "frames that check out but break a rule are refused" {
	forged flags 1 "unknown frame flags"
	forged flags 256 "unknown frame flags"
	forged counter 5 "sequence number out of order"
	forged counter 3 "sequence number out of order"
	forged arrival $((T * 1000 - 1)) "arrival time goes back"
	forged keylen 0 "bad partition key length"
	forged keylen 8 "bad partition key length"	# 32 + 8 > L = 39
	forged len 32 "bad frame length"
}

@test "a segment header that checks out but is wrong is refused" {
	mkstream s
	seq -f 'rec-%02.0f' 1 6 | kds-put -k k s
	cp -a s pristine
	seg=$(last_seg s 0)
	name=shardId-000000000000/100000000000000000001.seg
	# another version is not damage: the message must say "version"
	python3 "$DECODE" --set-header "$seg" version 2
	run -1 --separate-stderr kds-get $E s
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "kds-get: s: $name: offset "*"version"* ]]
	rm -rf s && cp -a pristine s
	python3 "$DECODE" --set-header "$seg" shard 1
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: $name: offset 0: bad segment header"
	rm -rf s && cp -a pristine s
	python3 "$DECODE" --set-header "$seg" first 2
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: $name: offset 0: bad segment header"
	[ -z "$output" ]
}

# reseal_meta STREAM: put a valid checksum line back after editing meta.
reseal_meta() {
	python3 - "$1/meta" <<'EOF'
import ctypes, sys
f = ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed
f.restype = ctypes.c_uint64
f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
p = sys.argv[1]
raw = open(p, "rb").read()
body = raw[: raw.rindex(b"checksum ")]
open(p, "wb").write(body + b"checksum %016x\n" % f(body, len(body), 0))
EOF
}

@test "meta: a bad checksum, an unknown key or another version is refused" {
	mkstream pristine
	echo a | kds-put pristine
	cp -a pristine s
	sed -i 's/^retention 86400$/retention 86401/' s/meta
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: meta: bad checksum"
	run -1 --separate-stderr kds-put s <<<"x"
	stderr_is "kds-put: s: meta: bad checksum"
	rm -rf s && cp -a pristine s
	sed -i 's/^segment-age 3600$/segment-age 3600\ncolour blue/' s/meta
	reseal_meta s
	# the message must name the key it does not know
	run -1 --separate-stderr kds-get $E s
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "kds-get: s: meta: line 6: "*colour* ]]
	rm -rf s && cp -a pristine s
	sed -i 's/^kds-stream 1$/kds-stream 2/' s/meta
	reseal_meta s
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: meta: line 1: unknown format version"
	rm -rf s && cp -a pristine s
	truncate -s -5 s/meta
	run -1 --separate-stderr kds-get $E s
	[[ $stderr == "kds-get: s: meta: "* ]]
	[ "${#stderr_lines[@]}" -eq 1 ]
}

# meta is read whole, up to 16 MiB: one larger is refused unread, by name.
@test "meta: larger than 16 MiB is refused, by every tool that opens it" {
	mkstream s
	echo a | kds-put s
	truncate -s 17M s/meta
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: meta: larger than 16777216 bytes"
	run -1 --separate-stderr kds-put s <<<"x"
	stderr_is "kds-put: s: meta: larger than 16777216 bytes"
	run -1 --separate-stderr kds-describe s
	stderr_is "kds-describe: s: meta: larger than 16777216 bytes"
	run -1 --separate-stderr kds-reshard s split 0
	stderr_is "kds-reshard: s: meta: larger than 16777216 bytes"
	run -1 --separate-stderr kds-expire s
	stderr_is "kds-expire: s: meta: larger than 16777216 bytes"
}

@test "a compressed segment is kds-stream(5)'s: the decoder inflates it to its SEQ.seg, byte for byte" {
	mkstream s -n 2 --segment-bytes 1M
	for k in 0 1 2; do
		corpus 1500 $((k + 10)) | put_at "$((T + k))" -i jsonl s
	done
	# a record of 1 MiB less its key: a block past 128 KiB
	head -c 786400 /dev/zero | tr '\0' 'x' | put_at $((T + 5)) -k big -E 0 s
	corpus 300 20 | put_at $((T + 6)) -i jsonl s
	python3 "$DECODE" s >before
	cp -a s orig
	KDS_NOW=$((T + 60)) kds-expire --compress-after 0s s
	[ "$(find s -name '*.zseg' | wc -l)" -ge 2 ]
	python3 "$DECODE" s >after
	# the same records, at the same segment offsets, in SEQ.zseg
	python3 - before after <<'PY'
import json, os, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) > 4000, (len(a), len(b))
for x, y in zip(a, b):
    if y["segment"].endswith(".zseg"):
        assert x["segment"][:-4] == y["segment"][:-5], (x, y)
        x = dict(x, segment=y["segment"])
    assert x == y, (x, y)
PY
	big=0
	for z in $(find s -name '*.zseg'); do
		seg=orig/${z#s/}
		seg=${seg%.zseg}.seg
		python3 "$DECODE" --inflate "$z" | cmp - "$seg"
		python3 - "$z" "$seg" <<'PY'
import struct, sys
z = open(sys.argv[1], "rb").read()
seg = open(sys.argv[2], "rb").read()
magic, ver = struct.unpack_from("<6sH", z)
assert (magic, ver) == (b"KDSZSG", 1)
assert z[8:56] == seg[:48], "the segment header, byte for byte"
last, first_arr, last_arr, size = struct.unpack_from("<QqqQ", z, 56)
assert size == len(seg)
seg_off, first, arrival, R, C = struct.unpack_from("<QQqII", z, 96)
assert seg_off == 48 and first == struct.unpack_from("<Q", seg, 16)[0]
assert arrival == first_arr == struct.unpack_from("<q", seg, 48 + 24)[0]
assert z[144:148] == b"\x28\xb5\x2f\xfd", "a zstd frame"
PY
		big=$((big + $(python3 "$DECODE" --blocks "$z" | awk '$3 > 131072 + 32768' | wc -l)))
	done
	[ "$big" -ge 1 ]
	# the decoder is not blind: a byte of a block, or of an index entry
	z=$(find s -name '*.zseg' | sort | head -n 1)
	cp "$z" z.saved
	flip "$z" 200
	run -1 --separate-stderr python3 "$DECODE" s
	stderr_is "kds-decode: $z: offset 96: bad block checksum"
	cp z.saved "$z"
	flip "${z%.zseg}.zidx" 5
	run -1 --separate-stderr python3 "$DECODE" s
	stderr_is "kds-decode: ${z%.zseg}.zidx: offset 0: bad entry checksum"
}
