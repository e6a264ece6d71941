#!/usr/bin/env bats
# 75-verify: kds-describe --verify, an fsck of a stream: every kind of
# damage found with its file and offset (or line), exit 1; --repair cuts a
# torn tail, rewrites indexes and tails, and leaves every other damage
# byte for byte as it was.

load helper

S=shardId-000000000000
SEG1=100000000000000000001.seg

# twenty: stream s, one shard, records rec-01..rec-20 of key k: frames of
# 39 bytes, frame N at offset 48 + 39 * (N - 1), a segment of 828 bytes.
twenty() {
	mkstream s
	seq -f 'rec-%02.0f' 1 20 | kds-put -k k s
}

# bitflip FILE OFFSET BIT: invert one bit of one byte, in place.
bitflip() {
	python3 - "$@" <<'EOF'
import sys
path, off, bit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ (1 << bit)]))
EOF
}

# invert FILE COPY: COPY is FILE with every byte inverted, made once for a
# loop that damages one byte of FILE at a time with flip_from: one python3
# for the loop rather than one for each byte.
invert() {
	python3 - "$1" "$2" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(bytes(b ^ 0xff for b in data))
EOF
}

# flip_from COPY FILE OFFSET: as flip FILE OFFSET (invert every bit of one
# byte, in place), taking the inverted byte from COPY, made by invert.
flip_from() {
	dd if="$1" of="$2" bs=1 skip="$3" seek="$3" count=1 conv=notrunc status=none
}

# verify_exits STATUS [OPTION...]: kds-describe --verify OPTION... s exits
# STATUS, checked and captured (output, stderr, stderr_lines) as run
# -STATUS --separate-stderr does it, but through capture: for the loops
# over every offset, where run's mktemp costs as much as kds-describe.
verify_exits() {
	local want=$1
	shift
	capture kds-describe --verify "$@" s
	[ "$status" -eq "$want" ] || {
		echo "kds-describe --verify $* s: exit $status, not $want; stderr: $stderr" >&2
		return 1
	}
}

# snapshot DIR: every file under DIR with its bytes' checksum, to show
# that nothing was changed.
snapshot() {
	find "$1" -type f -print0 | sort -z | xargs -0 sha256sum
}

# only_lines_about PREFIX: every line of $stderr starts with
# "kds-describe: s: PREFIX", and there is one at least.
only_lines_about() {
	[ -n "$stderr" ] || { echo "no line on stderr" >&2; return 1; }
	local l
	for l in "${stderr_lines[@]}"; do
		[[ $l == "kds-describe: s: $1"* ]] || {
			printf 'unexpected line: %s\n' "$l" >&2
			return 1
		}
	done
}

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

@test "a clean stream verifies: exit 0, nothing on stderr, one summary line" {
	mkstream s -n 3 --segment-bytes 4096
	seq -f 'record-%05.0f' 1 3000 | kds-put s
	run -0 kds-get -c etl -n 100 s
	bytes=$(find s -name '*.seg' -printf '%s\n' | awk '{ t += $1 } END { print t }')
	nseg=$(find s -name '*.seg' | wc -l)
	[ "$nseg" -gt 3 ]
	run -0 --separate-stderr kds-describe --verify s
	[ -z "$stderr" ]
	output_is "s: 3 shards, $nseg segments, 3000 records, $bytes bytes checked: no damage"
	# and --repair finds nothing to do, and changes nothing
	snapshot s >before
	run -0 --separate-stderr kds-describe --verify --repair s
	[ -z "$stderr" ]
	output_is "s: 3 shards, $nseg segments, 3000 records, $bytes bytes checked: no damage"
	snapshot s | diff before -
}

@test "an empty stream verifies" {
	mkstream s -n 2
	run -0 --separate-stderr kds-describe --verify s
	[ -z "$stderr" ]
	output_is "s: 2 shards, 2 segments, 0 records, 96 bytes checked: no damage"
}

@test "a flipped bit in a data byte: file, offset, the record lost, exit 1" {
	twenty
	cp -a s pristine
	for bit in 0 3 7; do
		rm -rf s && cp -a pristine s
		# frame 6, offset 243: its data starts at 243 + 32 + 1
		bitflip s/$S/$SEG1 $((243 + 35)) $bit
		run -1 --separate-stderr kds-describe --verify s
		stderr_is "kds-describe: s: $S/$SEG1: offset 243: bad checksum (39 bytes to the next valid frame; sequence number $(seq_of 0 6) unreadable)"
		output_is "s: 1 shard, 1 segment, 19 records, 828 bytes checked: 1 problem"
	done
}

@test "a flipped byte anywhere in a frame header: found at the frame's offset" {
	no_leak_check
	twenty
	cp -a s pristine
	invert s/$S/$SEG1 inverted
	seq6=$(seq_of 0 6)
	# each of its 32 bytes (each run of the suite every STEP-th of them)
	for b in $(stepped $(seq 0 31)); do
		rm -rf s && cp -a pristine s
		flip_from inverted s/$S/$SEG1 $((243 + b))
		verify_exits 1
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ $stderr == "kds-describe: s: $S/$SEG1: offset 243: "*"(39 bytes to the next valid frame; sequence number $seq6 unreadable)" ]] || {
			echo "header byte $b: $stderr" >&2
			return 1
		}
		output_is "s: 1 shard, 1 segment, 19 records, 828 bytes checked: 1 problem"
	done
	# the length's high byte: a length no frame can have
	rm -rf s && cp -a pristine s
	flip_from inverted s/$S/$SEG1 $((243 + 11))
	run -1 --separate-stderr kds-describe --verify s
	[[ $stderr == "kds-describe: s: $S/$SEG1: offset 243: bad frame length ("* ]]
}

@test "damage in several frames: one line each, and the walk goes on" {
	twenty
	flip s/$S/$SEG1 $((48 + 39 * 2 + 35))
	flip s/$S/$SEG1 $((48 + 39 * 9 + 35))
	flip s/$S/$SEG1 $((48 + 39 * 10 + 35))
	run -1 --separate-stderr kds-describe --verify s
	[ "${#stderr_lines[@]}" -eq 2 ]
	[ "${stderr_lines[0]}" = "kds-describe: s: $S/$SEG1: offset 126: bad checksum (39 bytes to the next valid frame; sequence number $(seq_of 0 3) unreadable)" ]
	[ "${stderr_lines[1]}" = "kds-describe: s: $S/$SEG1: offset 399: bad checksum (78 bytes to the next valid frame; sequence numbers $(seq_of 0 10) to $(seq_of 0 11) unreadable)" ]
	output_is "s: 1 shard, 1 segment, 17 records, 828 bytes checked: 2 problems"
}

@test "a damaged last frame is damage, not a torn tail" {
	twenty
	flip s/$S/$SEG1 $((48 + 39 * 19 + 35))
	cp -a s before
	run -1 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: $S/$SEG1: offset 789: bad checksum (nothing valid after it: 39 bytes)"
	output_is "s: 1 shard, 1 segment, 19 records, 828 bytes checked: 1 problem, 0 repaired"
	diff -r before s
}

@test "a flipped byte in a segment header: offset 0, exit 1" {
	twenty
	cp -a s pristine
	invert s/$S/$SEG1 inverted
	for b in 0 5 6 8 16 24 32 40 47; do
		rm -rf s && cp -a pristine s
		flip_from inverted s/$S/$SEG1 $b
		run -1 --separate-stderr kds-describe --verify s
		stderr_is "kds-describe: s: $S/$SEG1: offset 0: bad segment header"
		output_is "s: 1 shard, 1 segment, 0 records, 828 bytes checked: 1 problem"
	done
}

@test "a segment header resealed with another version says so" {
	have_xxhash || skip "no libxxhash"
	twenty
	python3 "$DECODE" --set-header s/$S/$SEG1 version 2
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/$SEG1: offset 0: unknown segment format version"
}

@test "a flipped byte in an index: the index's name and the entry's offset" {
	mkstream s
	# records of about 1 KiB: a 200 KiB segment, an index entry per 32 KiB
	python3 -c 'import sys; sys.stdout.write("".join("%04d%s\n" % (i, "x" * 1000) for i in range(200)))' |
	    kds-put -k k s
	idx=s/$S/100000000000000000001.idx
	[ "$(filesize $idx)" -ge 160 ]
	cp -a s pristine
	invert $idx inverted
	for e in 0 1 3; do
		for b in 0 9 17 30; do
			rm -rf s && cp -a pristine s
			flip_from inverted $idx $((32 * e + b))
			run -1 --separate-stderr kds-describe --verify s
			stderr_is "kds-describe: s: $S/100000000000000000001.idx: offset $((32 * e)): bad checksum"
			[[ $output == *": 1 problem" ]]
		done
	done
	# cut short inside its last entry
	rm -rf s && cp -a pristine s
	truncate -s -7 $idx
	at=$(($(filesize $idx) / 32 * 32))
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/100000000000000000001.idx: offset $at: partial entry of 25 bytes"
	# --repair writes it anew, exactly as the writer had it
	run -0 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: $S/100000000000000000001.idx: offset $at: partial entry of 25 bytes; repaired: written anew"
	[[ $output == *": 1 problem, 1 repaired" ]]
	cmp $idx pristine/$S/100000000000000000001.idx
	run -0 --separate-stderr kds-describe --verify s
	[ -z "$stderr" ]
}

@test "index entries that check out but point wrong: found and rewritten" {
	have_xxhash || skip "no libxxhash to seal forged entries"
	twenty
	idx=s/$S/100000000000000000001.idx
	cp $idx good
	# entry 1: counter 7 at the offset of frame 6; entry 2: past the end
	python3 - $idx <<'EOF'
import ctypes, struct, sys
f = ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed
f.restype = ctypes.c_uint64
f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
def entry(counter, ms, off):
    b = struct.pack("<QqQ", counter, ms, off)
    return b + struct.pack("<Q", f(b, 24, 0))
raw = open(sys.argv[1], "rb").read()
ms = struct.unpack_from("<q", raw, 8)[0]
open(sys.argv[1], "ab").write(entry(7, ms, 243) + entry(30, ms, 5000))
EOF
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/100000000000000000001.idx: offset 32: entry does not match the frame at 243 (2 bad entries)"
	# kds-get is not misled: the index is a cache, checked before use
	run -0 --separate-stderr kds-get $E -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 7)" s
	output_is "$(seq -f 'rec-%02.0f' 7 20)"
	run -0 --separate-stderr kds-describe --verify --repair s
	[[ $stderr == *"; repaired: written anew" ]]
	cmp $idx good
}

@test "an index without its segment: reported, removed by --repair" {
	twenty
	cp s/$S/100000000000000000001.idx s/$S/100000000000000000099.idx
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/100000000000000000099.idx: an index without its segment"
	run -0 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: $S/100000000000000000099.idx: an index without its segment; repaired: removed"
	[ ! -e s/$S/100000000000000000099.idx ]
	run -0 kds-describe --verify s
}

@test "meta: a flipped byte, a malformed line, shards that do not cover the keys" {
	mkstream pristine -n 2
	seq 1 10 | kds-put pristine
	invert pristine/meta inverted
	for b in 0 20 40 100 200; do
		rm -rf s && cp -a pristine s
		flip_from inverted s/meta $b
		run -1 --separate-stderr kds-describe --verify s
		stderr_is "kds-describe: s: meta: bad checksum"
		[ -z "$output" ]
	done
	have_xxhash || skip "no libxxhash to reseal meta"
	# the second shard line, resealed with a state that does not exist
	rm -rf s && cp -a pristine s
	sed -i 's/^\(shard shardId-000000000001\) open /\1 opne /' s/meta
	reseal_meta s
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: meta: line 8: malformed"
	# well formed, but shard 1 starts one key late: a key no shard takes
	rm -rf s && cp -a pristine s
	start=$(awk '$2 == "shardId-000000000001" { print $6 }' s/meta)
	sed -i "s/^\(shard shardId-000000000001 open - - \)$start /\1$(python3 -c "print($start + 1)") /" s/meta
	reseal_meta s
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: meta: line 8: the open shards do not cover the hash key space once"
	[[ $output == *": 1 problem" ]]
}

@test "kds-get: damage in meta is an error with its file, never data" {
	twenty
	flip s/meta 30
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: meta: bad checksum"
	[ -z "$output" ]
}

@test "kds-get: damage in an index is never data; verify names its file and offset" {
	mkstream s
	python3 -c 'import sys; sys.stdout.write("".join("%04d%s\n" % (i, "x" * 1000) for i in range(200)))' |
	    kds-put -k k s
	kds-get $E s >want
	for q in 1 40 100 199; do kds-get $E -n 3 -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 $q)" s; done >want.seek
	idx=s/$S/100000000000000000001.idx
	for b in 8 40 72 100 130; do flip $idx $b; done
	run -0 --separate-stderr kds-get $E s
	[ -z "$stderr" ]
	[ "$output" = "$(cat want)" ]
	for q in 1 40 100 199; do kds-get $E -n 3 -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 $q)" s; done >got.seek
	cmp want.seek got.seek
	# the reader takes it as the cache it is; --verify says where it is bad
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/100000000000000000001.idx: offset 0: bad checksum (5 bad entries)"
}

@test "truncations anywhere in the last segment: each found, exit 1" {
	no_leak_check
	mkstream s
	seq -f 'rec-%02.0f' 1 6 | kds-put -k k s
	# 6 frames: 48 + 6 * 39 = 282 bytes
	[ "$(filesize s/$S/$SEG1)" -eq 282 ]
	cp -a s pristine
	# every length in the header; in each frame its first three and last
	# three bytes, and one in its middle, around every boundary (each run
	# of the suite every STEP-th of these lengths)
	lens=$(seq 0 48)
	for ((f = 0; f < 6; f++)); do
		o=$((48 + f * 39))
		lens="$lens $((o + 1)) $((o + 2)) $((o + 3)) $((o + 19)) $((o + 36)) $((o + 37)) $((o + 38)) $((o + 39))"
	done
	for len in $(stepped $lens); do
		((len < 282)) || continue
		rm -rf s && cp -a pristine s
		truncate -s $len s/$S/$SEG1
		verify_exits 1
		if ((len < 48)); then
			want="kds-describe: s: $S/$SEG1: offset 0: bad segment header"
		elif (((len - 48) % 39 == 0)); then
			n=$(((len - 48) / 39))
			want="kds-describe: s: $S/tail: offset 16: says the segment ends at 282 after counter 6, it ends at $len after counter $n"
			# cut to its header: the index names a frame no longer there
			((n > 0)) || want="kds-describe: s: $S/100000000000000000001.idx: offset 0: entry points past the end of the segment, at 48
$want"
		else
			at=$((48 + (len - 48) / 39 * 39))
			want="kds-describe: s: $S/$SEG1: offset $at: torn tail ($((len - at)) bytes)"
		fi
		[ "$stderr" = "$want" ] || {
			printf 'length %d:\n  want %s\n  got  %s\n' "$len" "$want" "$stderr" >&2
			return 1
		}
	done
}

@test "truncations anywhere in an earlier segment: found, and --repair changes no segment" {
	no_leak_check
	mkstream s --segment-bytes 4096
	for k in 1 2; do seq -f "b$k-%03.0f" 1 100 | kds-put -k k s; done
	first=$(segs s 0 | head -n 1)
	second=$(segs s 0 | sed -n 2p)
	size=$(filesize "$first")
	[ -n "$second" ]
	cp -a s pristine
	# the first 51 lengths, the last 80, and every 17th frame boundary
	# (each run of the suite every STEP-th of these lengths)
	frames "$first" >frames
	lens="$(seq 0 50) $(seq $((size - 80)) $((size - 1))) $(awk 'NR % 17 == 0 { print $1 }' frames)"
	for len in $(stepped $lens); do
		rm -rf s && cp -a pristine s
		truncate -s "$len" "$first"
		verify_exits 1
		only_lines_about "$S/" || { echo "length $len" >&2; return 1; }
		[[ $stderr == *": offset "* ]]
		cp "$first" first.cut
		verify_exits 1 --repair
		cmp "$first" first.cut
		cmp "$second" "pristine/${second#s/}"
	done
	# cut at a frame boundary: the records lost are named
	rm -rf s && cp -a pristine s
	last=$(tail -n 1 frames)
	truncate -s "${last%% *}" "$first"
	c=${last##* }
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/$(basename "$second"): offset 0: first sequence number does not follow the previous segment (sequence number $(seq_of 0 "$c") missing)"
}

@test "a torn tail: --repair cuts it; then clean, kds-get reads every record before it" {
	twenty
	cp -a s pristine
	for cut in 1 2 11 12 20 31 32 33 38; do
		rm -rf s && cp -a pristine s
		truncate -s $((789 + cut)) s/$S/$SEG1
		run -1 --separate-stderr kds-describe --verify s
		stderr_is "kds-describe: s: $S/$SEG1: offset 789: torn tail ($cut bytes)"
		output_is "s: 1 shard, 1 segment, 19 records, $((789 + cut)) bytes checked: 1 problem"
		run -0 --separate-stderr kds-describe --verify --repair s
		stderr_is "kds-describe: s: $S/$SEG1: offset 789: torn tail ($cut bytes); repaired: cut"
		output_is "s: 1 shard, 1 segment, 19 records, $((789 + cut)) bytes checked: 1 problem, 1 repaired"
		[ "$(filesize s/$S/$SEG1)" -eq 789 ]
		run -0 --separate-stderr kds-describe --verify s
		[ -z "$stderr" ]
		run -0 --separate-stderr kds-get $E s
		output_is "$(seq -f 'rec-%02.0f' 1 19)"
		[ -z "$stderr" ]
	done
	# the writer goes on from there
	run -0 --separate-stderr kds-put -p -k k s <<<"rec-20"
	output_is "$S $(seq_of 0 20)"
	if have_xxhash; then python3 "$DECODE" s >/dev/null; fi
}

@test "a torn tail left by a writer killed mid-write is cut as the writer would" {
	twenty
	# a frame half written after the tail was: the tail still says 828
	python3 -c 'import sys; sys.stdout.buffer.write(open(sys.argv[1], "rb").read()[48:48 + 20])' s/$S/$SEG1 >>s/$S/$SEG1
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/$SEG1: offset 828: torn tail (20 bytes)"
	run -0 --separate-stderr kds-describe --verify --repair s
	[ "$(filesize s/$S/$SEG1)" -eq 828 ]
	# a whole last frame of zeros, as a power loss may leave, is torn too
	python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(789); f.write(bytes(39))' s/$S/$SEG1
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/$SEG1: offset 789: torn tail (39 bytes)"
	run -0 --separate-stderr kds-describe --verify --repair s
	run -0 --separate-stderr kds-describe --verify s
	run -0 kds-get $E s
	output_is "$(seq -f 'rec-%02.0f' 1 19)"
}

@test "corruption in the middle is not repaired: files unchanged, exit 1" {
	twenty
	# frame 6 damaged, and the last frame torn as well: a writer that
	# "repaired torn tails" naively would be tempted twice
	flip s/$S/$SEG1 $((243 + 35))
	truncate -s 810 s/$S/$SEG1
	snapshot s >before
	run -1 --separate-stderr kds-describe --verify --repair s
	[ "${#stderr_lines[@]}" -eq 2 ]
	[ "${stderr_lines[0]}" = "kds-describe: s: $S/$SEG1: offset 243: bad checksum (39 bytes to the next valid frame; sequence number $(seq_of 0 6) unreadable)" ]
	[ "${stderr_lines[1]}" = "kds-describe: s: $S/$SEG1: offset 789: torn tail (21 bytes); not repaired: the shard has other damage" ]
	output_is "s: 1 shard, 1 segment, 18 records, 810 bytes checked: 2 problems, 0 repaired"
	snapshot s | diff before -
	# and again: nothing changes on a second run either
	run -1 --separate-stderr kds-describe --verify --repair s
	snapshot s | diff before -
	# a damaged length (a frame that looks torn, with frames after it)
	rm -rf s && twenty
	poke s/$S/$SEG1 $((243 + 8)) '<I' 100000
	cp s/$S/$SEG1 seg.before
	run -1 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: $S/$SEG1: offset 243: bad frame length (39 bytes to the next valid frame; sequence number $(seq_of 0 6) unreadable)"
	cmp seg.before s/$S/$SEG1
}

@test "a tail that disagrees with its segment: reported, rewritten by --repair" {
	twenty
	cp -a s pristine
	flip s/$S/tail 20
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/tail: offset 56: bad checksum"
	run -0 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: $S/tail: offset 56: bad checksum; repaired: rewritten"
	cmp s/$S/tail pristine/$S/tail
	# the last segment cut at a frame boundary: records the tail counts
	# are gone, and the line says which
	rm -rf s && cp -a pristine s
	truncate -s $((48 + 39 * 15)) s/$S/$SEG1
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/tail: offset 16: says the segment ends at 828 after counter 20, it ends at 633 after counter 15"
	run -0 --separate-stderr kds-describe --verify --repair s
	[[ $stderr == *"; repaired: rewritten" ]]
	run -0 --separate-stderr kds-put -p -k k s <<<"next"
	output_is "$S $(seq_of 0 16)"
	# a writer killed after its write, before its tail: the tail is behind
	rm -rf s && cp -a pristine s
	cp s/$S/tail old.tail
	echo x | kds-put -k k s
	cp old.tail s/$S/tail
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/tail: offset 16: says the segment ends at 828 after counter 20, it ends at 862 after counter 21"
	run -0 kds-describe --verify --repair s
	run -0 --separate-stderr kds-describe --verify s
	[ -z "$stderr" ]
}

@test "a roll cut short by a crash: its empty segment is removed as the writer would" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s --segment-bytes 4096
	seq -f 'a-%03.0f' 1 100 | kds-put -k k s
	# killed at the rename that puts a new segment in place: the tail
	# already names it; then a power loss keeps the name, not the bytes
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	    strace -f -o /dev/null -e trace=renameat2 -e inject=renameat2:signal=KILL \
	    kds-put -k k s < <(seq -f 'b-%03.0f' 1 100) || true
	tmp=$(find s/$S -name '*.seg.tmp')
	[ -n "$tmp" ]
	name=$(basename "${tmp%.tmp}")
	head -c 20 "$tmp" >"s/$S/$name"
	rm "$tmp"
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: $S/$name: offset 0: bad segment header (20 bytes): an interrupted roll"
	kds-get $E s >before
	run -0 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: $S/$name: offset 0: bad segment header (20 bytes): an interrupted roll; repaired: removed"
	[ ! -e "s/$S/$name" ]
	run -0 --separate-stderr kds-describe --verify s
	[ -z "$stderr" ]
	kds-get $E s | cmp - before
	# the same short segment, when the tail counts records in it, is
	# records cut away: damage, left alone
	rm -rf s && mkstream s --segment-bytes 4096
	seq -f 'a-%03.0f' 1 200 | kds-put -k k s
	last=$(last_seg s 0)
	truncate -s 20 "$last"
	run -1 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: $S/$(basename "$last"): offset 0: bad segment header"
	[ "$(filesize "$last")" -eq 20 ]
}

@test "a closed shard: its end against meta, and never cut" {
	mkstream s
	seq -f 'rec-%02.0f' 1 20 | kds-put -k k s
	run -0 kds-reshard s split $S
	seq 1 10 | kds-put s
	run -0 --separate-stderr kds-describe --verify s
	[ -z "$stderr" ]
	cp -a s pristine
	# cut at a frame boundary: the last records are gone
	truncate -s $((48 + 39 * 18)) s/$S/$SEG1
	run -1 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: $S/$SEG1: offset 750: meta says the shard was closed at $(seq_of 0 20), its records end at $(seq_of 0 18)"
	[ "$(filesize s/$S/$SEG1)" -eq 750 ]
	# cut inside its last frame: not a torn tail, a closed shard is final
	rm -rf s && cp -a pristine s
	truncate -s 810 s/$S/$SEG1
	run -1 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: $S/$SEG1: offset 789: truncated frame (21 bytes)"
	[ "$(filesize s/$S/$SEG1)" -eq 810 ]
}

@test "consumers: a checkpoint past its shard's end, a bad checkpoint, a bad start" {
	twenty
	run -0 kds-get -c etl -n 3 s
	ck=s/consumers/etl/$S.checkpoint
	[ -f $ck ]
	cp $ck good
	echo "$(seq_of 0 25) 1764324000000" >$ck
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: consumers/etl/$S.checkpoint: line 1: checkpoint $(seq_of 0 25) is past the shard's last record, $(seq_of 0 20)"
	echo "garbage" >$ck
	run -1 --separate-stderr kds-describe --verify s
	stderr_is "kds-describe: s: consumers/etl/$S.checkpoint: line 1: bad checkpoint"
	cp good $ck
	echo "NOW" >s/consumers/etl/start
	run -1 --separate-stderr kds-describe --verify --repair s
	stderr_is "kds-describe: s: consumers/etl/start: line 1: bad start"
	[ "$(cat s/consumers/etl/start)" = NOW ]
}

@test "verify and repair while producers write: no damage reported, none made" {
	no_leak_check
	mkstream s -n 2 --segment-bytes 4096
	(for k in $(seq 1 40); do seq -f "a$k-%.0f" 1 40 | kds-put s || exit 1; done) &
	p1=$!
	(for k in $(seq 1 40); do seq -f "b$k-%.0f" 1 40 | kds-put --sync=never s || exit 1; done) &
	p2=$!
	runs=0
	while kill -0 $p1 2>/dev/null || kill -0 $p2 2>/dev/null; do
		if ((runs % 2)); then o=--repair; else o=; fi
		kds-describe --verify $o s >/dev/null 2>err || {
			cat err >&2
			return 1
		}
		[ ! -s err ]
		runs=$((runs + 1))
	done
	wait $p1
	wait $p2
	echo "$runs runs" >&3
	[ "$runs" -ge 3 ]
	run -0 --separate-stderr kds-describe --verify s
	[[ $output == *" 3200 records, "*"no damage" ]]
	if have_xxhash; then python3 "$DECODE" s >/dev/null; fi
}

@test "usage: --repair without --verify, --verify with -j; no such stream" {
	twenty
	run -2 --separate-stderr kds-describe --repair s
	first_line_is "kds-describe: --repair goes with --verify"
	has_usage kds-describe
	[ -z "$output" ]
	run -2 --separate-stderr kds-describe -j --verify s
	first_line_is "kds-describe: --json and --verify do not go together"
	run -2 --separate-stderr kds-describe --verify
	has_usage kds-describe
	run -2 --separate-stderr kds-describe --verify a b
	has_usage kds-describe
	run -1 --separate-stderr kds-describe --verify nosuch
	stderr_is "kds-describe: nosuch: No such file or directory"
	[ -z "$output" ]
	run -1 --separate-stderr kds-describe --verify --repair nosuch
	stderr_is "kds-describe: nosuch: No such file or directory"
	[ ! -e nosuch ]
	mkdir plain
	run -1 --separate-stderr kds-describe --verify plain
	stderr_is "kds-describe: plain: not a stream (no meta file)"
	run -0 --separate-stderr kds-describe --help
	grep -q -e '--verify' <<<"$output"
	grep -q -e '--repair' <<<"$output"
	[ "${lines[1]}" = "       kds-describe --verify [--repair] stream" ]
}

@test "the man page documents --verify and --repair and stays lint-clean" {
	man=$BATS_TEST_DIRNAME/../man/kds-describe.1
	grep -q '^\.Fl \\-verify' "$man"
	grep -q '^\.Op Fl \\-repair' "$man"
	command -v mandoc >/dev/null || skip "no mandoc"
	mandoc -Tlint -W warning "$man"
}
