#!/usr/bin/env bats
# 70-crash: producers killed at any point, torn tails at every length,
# damaged frames that must not be mistaken for torn tails, and I/O errors:
# readers return exactly what is whole, acknowledged data is never lost,
# and the next kds-put recovers.

load helper

teardown() {
	if mountpoint -q "$BATS_TEST_TMPDIR/fs" 2>/dev/null; then
		umount "$BATS_TEST_TMPDIR/fs"
	fi
	return 0
}

# decode_ok STREAM: the independent decoder finds the stream as the spec
# says (skipped without libxxhash).  A crash between a batch and its index
# entries may leave the index a hole, which kds-stream(5) allows.  Whether
# there is a libxxhash is asked once a test: loops decode many times.
decode_ok() {
	if [ -z "${XXHASH-}" ]; then
		have_xxhash && XXHASH=yes || XXHASH=no
	fi
	[ "$XXHASH" = yes ] || return 0
	python3 "$DECODE" --lax-index "$1" >/dev/null
}

@test "kill -9 of producers, again and again: every read is clean" {
	mkstream s -n 2
	n=60000		# about 30 ms of kds-put: most kills land mid-run
	partial=0
	it=0		# (not "i": bats's run sets a global i)
	: >before
	for t in 0.004 0.012 0.002 0.02 0.008 0.03 0.016 0.001 0.024 0.006; do
		it=$((it + 1))
		seq -f "$it %.0f" 1 $n >in
		# the key is the record number, routed by its MD5
		kds-put -p -d ' ' -f 2 s <in >ack.$it 2>/dev/null &
		pid=$!
		sleep "$t"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" || true
		kds-get $E --format '%p %o %s\n' s >out 2>err || {
			echo "after kill $it: $(cat err)" >&2
			return 1
		}
		[ ! -s err ]
		# earlier producers' records are all still there, unchanged
		mine=$(awk -v it=$it 'BEGIN { printf "" >"earlier" }
		    $3 == it { n++; next } { print >"earlier" } END { print n + 0 }' out)
		cmp -s earlier before || {
			echo "after kill $it: earlier records changed" >&2
			return 1
		}
		[ "$mine" -eq "$n" ] || partial=$((partial + 1))
		mv out before
	done
	echo "# $partial of $it producers killed mid-run" >&3
	[ "$partial" -ge 3 ]
	# each producer's records: per shard, a prefix of what it sent there,
	# in order; every acknowledgement among them; and no sequence number
	# twice, over all of it.  Checked once, on the last read: each read
	# kept the records of the reads before it unchanged (above).
	python3 - "$n" before ack.* <<'EOF'
import hashlib, sys
n, out, acks = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
h = 2**128 // 2
want = {0: [], 1: []}
for r in range(1, n + 1):
    want[int.from_bytes(hashlib.md5(str(r).encode()).digest(), "big") // h].append(r)
got, seqs, every = {}, {}, set()
lines = 0
for line in open(out):
    shard, seq, it, r = line.split()
    got.setdefault(it, {0: [], 1: []})[int(shard[-1])].append(int(r))
    seqs.setdefault(it, set()).add(seq)
    every.add(seq)
    lines += 1
assert len(every) == lines, "a sequence number twice"
for ack in acks:
    it = ack.rsplit(".", 1)[1]
    for sh, rs in got.get(it, {0: [], 1: []}).items():
        assert rs == want[sh][: len(rs)], "producer %s, shard %d: not a prefix" % (it, sh)
    for line in open(ack):
        # a kill can cut the last line of stdout short: it counts for nothing
        if line.endswith("\n"):
            assert line.split()[1] in seqs.get(it, ()), \
                "producer %s: acknowledged but lost: %s" % (it, line)
EOF
	# and producers left alone complete on both recovered shards, after
	# which the stream is whole again, index and tail included
	run -0 --separate-stderr kds-put -p -k k -E 0 s < <(echo last0)
	run -0 --separate-stderr kds-put -p -k k -E "$HMAX" s < <(echo last1)
	run -0 --separate-stderr kds-get $E --format '%s\n' s
	grep -qx last0 <<<"$output"
	grep -qx last1 <<<"$output"
	decode_ok s
}

# read_back: out (read after a crash) is the first lines of all, the 50
# old records at least, and out2 (read after the next put) is out, then
# "after".  One awk, each file whole (RS is a byte none holds), byte for
# byte: it runs at every crash point.
read_back() {
	awk -v RS='\f' '
	FILENAME == "all" { all = $0 }
	FILENAME == "out" { out = $0 }
	FILENAME == "out2" { out2 = $0 }
	END {
		n = gsub(/\n/, "&", out)
		if (substr(all, 1, length(out)) != out || (out != "" && out !~ /\n$/))
			e = "out is not a prefix of the input"
		else if (n < 50)
			e = "out has " n " records, not the 50 old ones"
		else if (out2 != out "after\n")
			e = "\"after\" not right after the prefix"
		if (e != "") { print e >"/dev/stderr"; exit 1 }
	}' all out out2
}

# crash_loop CALLS: kill kds-put at its FIRSTth call of CALLS, then at every
# STEPth call after it (the 1st, 2nd, ... in make check-full), until a run
# completes; after each crash the stream reads back a prefix of the input,
# and the next kds-put recovers and appends after it.
crash_loop() {
	local calls=$1 n k=0 st
	mkstream pristine --segment-bytes 4096
	seq -f 'old-%.0f' 1 50 | kds-put -k k pristine
	seq -f 'rec-%04.0f' 1 400 >in
	{ seq -f 'old-%.0f' 1 50; cat in; } >all
	for ((n = FIRST; n <= 400; n += STEP)); do
		rm -rf s && cp -a pristine s
		st=0
		strace -f -o /dev/null -e trace="$calls" \
		    -e inject="$calls":signal=KILL:when=$n kds-put -k k s <in 2>put.err || st=$?
		kds-get $E s >out 2>err || {
			echo "crash at $calls $n: reader failed: $(cat err)" >&2
			return 1
		}
		[ ! -s err ]
		echo after | kds-put -k k s 2>err || {
			echo "crash at $calls $n: next kds-put failed: $(cat err)" >&2
			return 1
		}
		kds-get $E s >out2
		read_back || { echo "crash at $calls $n" >&2; return 1; }
		# kds-get checked every checksum; the independent decoder, the
		# most costly check, at every 3rd crash point tried and the last
		if ((k++ % 3 == 0 || st == 0)); then
			decode_ok s || { echo "crash at $calls $n: decoder disagrees" >&2; return 1; }
		fi
		if [ "$st" -eq 0 ]; then
			cmp -s <(cat all; echo after) out2
			echo "# $calls: crashed at call $FIRST and every $STEP after it, $((k - 1)) times; a run makes fewer than $n calls" >&3
			return 0
		fi
		[ "$st" -eq 137 ] || { echo "crash at $calls $n: exit $st: $(cat put.err)" >&2; return 1; }
	done
	echo "kds-put never completed under $calls" >&2
	return 1
}

@test "crash at every write: readers see a prefix, the next put recovers" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	crash_loop write,writev
}

@test "crash at every pwrite: readers see a prefix, the next put recovers" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	crash_loop pwrite64,pwritev
}

@test "crash at every fsync, ftruncate, open and flock: the same" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	crash_loop fsync,fdatasync,ftruncate
	rm -rf pristine s
	crash_loop openat,flock
}

# six STREAM: 6 records of different sizes, one segment; the last frame
# is 32 + 3 + 3 = 38 bytes.
six() {
	mkstream "$1"
	printf 'a\nbb\nccc\ndddddddddddddd\neeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\nzzz\n' |
	    kds-put -k key "$1"
}

# (The loops below run their tools plain, not under bats's run, and compare
# whole files: at every cut, run would cost more than the tools.)
@test "the last frame cut at every length: earlier records only, then recovery" {
	no_leak_check
	six pristine
	seg=$(last_seg pristine 0)
	size=$(filesize "$seg")
	read -r off len counter < <(frames "$seg" | tail -n 1)
	# (one test a line: under set -e, a failing test before && fails nothing)
	[ "$counter" -eq 6 ]
	[ $((off + len)) -eq "$size" ]
	[ "$len" -eq 38 ]
	printf 'a\nbb\nccc\ndddddddddddddd\neeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\n' >five
	# what a read gives after the next put: the five, then "next"
	for c in 1 2 3 4 5; do seq_of 0 $c; done | paste -d ' ' - five >then
	seq6=$(seq_of 0 6)
	echo "$seq6 next" >>then
	seq4=$(seq_of 0 4)
	# every length in make check-full, every STEPth otherwise
	cuts=($(stepped $(seq "$off" $((size - 1)))))
	k=0
	for t in "${cuts[@]}"; do
		rm -rf s && cp -a pristine s
		truncate -s "$t" "s/${seg#pristine/}"
		kds-get $E s >out 2>err || { echo "cut at $t: exit $?: $(cat err)" >&2; return 1; }
		[ ! -s err ] || { echo "cut at $t: $(cat err)" >&2; return 1; }
		cmp -s out five || { echo "cut at $t: $(cat out)" >&2; return 1; }
		# LATEST and AT_SEQUENCE_NUMBER agree
		e=$(kds-get $E -i AFTER_SEQUENCE_NUMBER --sequence "$seq4" s)
		[ "$e" = eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee ]
		p=$(kds-put -p -k key s <<<"next")
		[ "$p" = "shardId-000000000000 $seq6" ] ||
		    { echo "cut at $t: put said $p" >&2; return 1; }
		kds-get $E --format '%o %s\n' s >out
		same out then || { echo "cut at $t: read after the put" >&2; return 1; }
		# the independent decoder, the most costly check, at every 3rd
		# cut and the last
		if ((k++ % 3 == 0 || k == ${#cuts[@]})); then
			decode_ok s || { echo "cut at $t: decoder disagrees" >&2; return 1; }
		fi
	done
	[ "$k" -gt 0 ]
}

@test "a last segment cut inside its header is an interrupted roll" {
	mkstream pristine --segment-bytes 4096
	seq -f 'rec-%03.0f' 1 100 | kds-put -k k pristine
	seq -f 'rec-%03.0f' 101 200 | kds-put -k k pristine
	[ "$(segs pristine 0 | wc -l)" -eq 2 ]
	last=$(last_seg pristine 0)
	c=$(basename "$last" .seg)
	c=$((10#${c: -8}))	# the counter the last segment starts at
	seq -f 'rec-%03.0f' 1 $((c - 1)) >before
	{ cat before; echo next; } >then
	for t in 0 1 20 47 48; do
		rm -rf s && cp -a pristine s
		truncate -s "$t" "s/${last#pristine/}"
		kds-get $E s >out 2>err || { echo "cut at $t: exit $?: $(cat err)" >&2; return 1; }
		[ ! -s err ] || { echo "cut at $t: $(cat err)" >&2; return 1; }
		same out before
		run -0 --separate-stderr kds-put -p -k k s <<<"next"
		[ "$output" = "shardId-000000000000 $(seq_of 0 $c)" ]
		kds-get $E s >out
		same out then
		decode_ok s
	done
}

# twenty STREAM: 20 records of 39 bytes (key "k", data "rec-NN"); frame j
# (from 0) at 48 + 39 j.
twenty() {
	mkstream "$1"
	seq -f 'rec-%02.0f' 1 20 | kds-put -k k "$1"
}

# damaged_length L WHAT: frame 5 of 20 (offset 243) gets length L; with the
# tail torn as well, so that the writer must walk the segment.
damaged_length() {
	local l=$1 what=$2 seg
	rm -rf s
	twenty s
	seg=$(last_seg s 0)
	poke "$seg" $((243 + 8)) '<I' "$l"
	truncate -s -3 "$seg"
	cp "$seg" seg.before
	msg="s: shardId-000000000000/100000000000000000001.seg: offset 243: $what"
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: $msg"
	output_is "$(seq -f 'rec-%02.0f' 1 5)"
	run -1 --separate-stderr kds-put -k k s <<<"more"
	stderr_is "kds-put: $msg"
	# nothing was truncated away, nothing appended
	cmp "$seg" seg.before
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: $msg"
}

@test "a damaged length in a frame that is not the last is corruption, never truncated" {
	damaged_length 1000 "bad frame length"		# runs past EOF: looks torn
	damaged_length 4294967295 "bad frame length"	# above 1 MiB + 32
	damaged_length 20 "bad frame length"		# below 33
	damaged_length 40 "bad checksum"		# plausible, inside the file
	damaged_length 38 "bad checksum"
}

@test "a damaged length, tail intact: later puts never cut the damage away" {
	twenty s
	seg=$(last_seg s 0)
	poke "$seg" $((243 + 8)) '<I' 1000
	cp "$seg" seg.before
	size=$(filesize "$seg")
	kds-put -k k s <<<"more" || true
	cmp -n "$size" "$seg" seg.before
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: shardId-000000000000/100000000000000000001.seg: offset 243: bad frame length"
}

@test "the tail file damaged: the writer recovers from the segment" {
	twenty pristine
	for how in flip zero short; do
		rm -rf s && cp -a pristine s
		tail=s/shardId-000000000000/tail
		case $how in
		flip) flip "$tail" 20 ;;
		zero) truncate -s 0 "$tail" ;;
		short) truncate -s 30 "$tail" ;;
		esac
		run -0 --separate-stderr kds-put -p -k k s <<<"next"
		[ "$output" = "shardId-000000000000 $(seq_of 0 21)" ] ||
		    { echo "tail $how: $output $stderr" >&2; return 1; }
		run -0 --separate-stderr kds-get $E s
		[ "$output" = "$(seq -f 'rec-%02.0f' 1 20; echo next)" ]
		decode_ok s
	done
}

# tail is also the shard's writer lock: a writer that made a new one while
# another held the old, unlinked one would write beside it.  Refusing is right.
@test "the tail file missing: kds-put refuses, naming it; readers go on" {
	twenty s
	rm s/shardId-000000000000/tail
	run -1 --separate-stderr kds-put -k k s <<<"next"
	stderr_is "kds-put: s: shardId-000000000000/tail: No such file or directory"
	run -0 --separate-stderr kds-get $E s
	output_is "$(seq -f 'rec-%02.0f' 1 20)"
}

# enospc_at N: the Nth write to the segment fails with ENOSPC.
enospc_at() {
	local seg
	seg=$(realpath "$(last_seg s 0)")
	run -1 --separate-stderr strace -f -o /dev/null -P "$seg" \
	    -e trace=write,writev,pwrite64,pwritev -e inject=write,writev:error=ENOSPC:when=$1 \
	    kds-put -p -k k s <in
}

@test "ENOSPC on the segment: exit 1, nothing unacknowledged stored, then recovery" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	seq -f 'old-%02.0f' 1 10 | kds-put -k k s
	size=$(filesize "$(last_seg s 0)")
	seq -f 'new-%.0f' 1 1000 >in
	enospc_at 1
	stderr_is "kds-put: s: shardId-000000000000/100000000000000000001.seg: write: No space left on device"
	[ -z "$output" ]
	[ "$(filesize "$(last_seg s 0)")" -eq "$size" ]
	run -0 --separate-stderr kds-get $E s
	output_is "$(seq -f 'old-%02.0f' 1 10)"
	run -0 --separate-stderr kds-put -p -k k s <<<"next"
	output_is "shardId-000000000000 $(seq_of 0 11)"
	decode_ok s
}

@test "ENOSPC after some batches: the stream holds exactly what was acknowledged" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	seq -f 'old-%02.0f' 1 10 | kds-put -k k s
	seq -f 'new-%07.0f-padding-padding-padding-padding-padding-padding' 1 200000 >in
	for n in 2 3; do
		enospc_at $n
		[[ $stderr == *"No space left on device" ]]
		[ "${#lines[@]}" -gt 0 ] || { echo "no batch acknowledged before write $n" >&2; return 1; }
		kds-get $E --format '%p %o\n' s | tail -n +11 >stored
		printf '%s\n' "${lines[@]}" | cmp - stored
		kds-get $E -n $((10 + ${#lines[@]})) s | tail -n +11 | cmp - <(head -n "${#lines[@]}" in)
		decode_ok s
		rm -rf s && mkstream s && seq -f 'old-%02.0f' 1 10 | kds-put -k k s
	done
}

@test "EIO from fdatasync with --sync=always: exit 1, that batch not acknowledged" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	echo old | kds-put -k k s
	seg=$(realpath "$(last_seg s 0)")
	run -1 --separate-stderr strace -f -o /dev/null -P "$seg" -e trace=fsync,fdatasync \
	    -e inject=fsync,fdatasync:error=EIO:when=1 kds-put --sync=always -p -k k s < <(seq 5)
	stderr_is "kds-put: s: shardId-000000000000/100000000000000000001.seg: fsync: Input/output error"
	[ -z "$output" ]
	run -0 --separate-stderr kds-get $E s
	[ "${lines[0]}" = old ]
}

@test "a real full file system: exit 1, readable, exactly the acknowledged records" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount tmpfs"
	mkdir fs
	mount -t tmpfs -o size=256k none fs 2>/dev/null || skip "cannot mount tmpfs"
	mkstream fs/s --segment-bytes 64K
	seq -f 'record-%06.0f-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' 1 20000 >in
	run --separate-stderr kds-put -p -k k fs/s <in
	acked=("${lines[@]}")
	status_put=$status
	err_put=$stderr
	kds-get $E --format '%p %o\n' fs/s >stored 2>err || true
	kds-get $E fs/s >data 2>>err || true
	cp err get.err
	umount fs
	[ "$status_put" -eq 1 ]
	[[ $err_put == "kds-put: fs/s: "*"No space left on device" ]]
	[ ! -s get.err ]
	printf '%s\n' "${acked[@]}" | cmp - stored
	head -n "${#acked[@]}" in | cmp - data
}

# A roll that cannot make its segment (here a directory holds the name)
# fails the batch: the message names shard and file, and the records
# acknowledged before the roll are exactly those stored.
@test "a roll that cannot create its segment: exit 1, shard/file named" {
	mkstream s --segment-bytes 4096
	seq -f 'rec-%03.0f' 1 100 | kds-put -k k s
	mkdir s/shardId-000000000000/100000000000000000102.seg
	run -1 --separate-stderr kds-put -p -k k s < <(seq -f 'rec-%03.0f' 101 110)
	stderr_is "kds-put: s: shardId-000000000000/100000000000000000102.seg: File exists"
	output_is "shardId-000000000000 100000000000000000101"
	rmdir s/shardId-000000000000/100000000000000000102.seg
	run -0 --separate-stderr kds-get $E s
	[ "${#lines[@]}" -eq 101 ]
	[ "${lines[100]}" = rec-101 ]
	[ ! -e s/shardId-000000000000/100000000000000000102.seg.tmp ]
}

# After a power loss the tail may reach the disk before the frame it
# counts: the last frame reads back as zeros with the tail intact.  The
# next writer must see it, cut it like any torn tail and go on, never
# append behind it (the record after would be unreadable).
@test "a zeroed last frame with its tail intact is cut by the next put" {
	twenty s
	seg=$(last_seg s 0)
	dd if=/dev/zero of="$seg" bs=1 seek=789 count=39 conv=notrunc status=none
	run -0 --separate-stderr kds-get $E s
	[ "${#lines[@]}" -eq 19 ]
	[ "${lines[18]}" = rec-19 ]
	run -0 --separate-stderr kds-put -p -k k s <<<"after"
	output_is "shardId-000000000000 $(seq_of 0 20)"
	run -0 --separate-stderr kds-get $E s
	[ "${#lines[@]}" -eq 20 ]
	[ "${lines[19]}" = after ]
	decode_ok s
}
