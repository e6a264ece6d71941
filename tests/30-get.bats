#!/usr/bin/env bats
# 30-get: kds-get, every iterator type, shard selection, limits, every
# output format, the merge of shards by arrival time, and corruption
# reported with shard, segment and offset.

load helper

setup() {
	kds_setup
	fixed_clock
}


# ten STREAM: records r1..r10, record i arriving at T + i seconds.
ten() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		echo "r$i" | put_at $((T + i)) -k k "$1" || return 1
	done
}

@test "TRIM_HORIZON: every record, in order" {
	mkstream s
	ten s
	run -0 --separate-stderr kds-get $E -i TRIM_HORIZON s
	output_is "$(lines 10 r)"
	[ -z "$stderr" ]
}

@test "without -i, kds-get starts at TRIM_HORIZON" {
	mkstream s
	ten s
	run -0 --separate-stderr kds-get $E s
	output_is "$(lines 10 r)"
}

@test "iterator types are also accepted in lower case" {
	mkstream s
	ten s
	run -0 --separate-stderr kds-get $E -i trim_horizon s
	output_is "$(lines 10 r)"
	run -0 --separate-stderr kds-get $E -i latest s
	[ -z "$output" ]
}

@test "LATEST with -e: nothing, exit 0" {
	mkstream s
	ten s
	run -0 --separate-stderr kds-get $E -i LATEST s
	[ -z "$output" ]
	[ -z "$stderr" ]
}

@test "LATEST without -e waits for records put after it starts" {
	mkstream s
	ten s
	timeout 20 kds-get -F -i LATEST -n 2 s >out 2>err &
	pid=$!
	sleep 1
	printf 'new1\nnew2\n' | kds-put -k k s
	wait "$pid"
	[ "$(cat out)" = $'new1\nnew2' ]
	[ ! -s err ]
}

@test "without -e, kds-get follows the stream, across a segment roll" {
	mkstream s --segment-bytes 4096
	echo first | kds-put s
	timeout 20 kds-get -F -i TRIM_HORIZON -n 4 --format '%S\n' s >out 2>err &
	pid=$!
	sleep 0.5
	python3 -c 'print("x" * 5000)' | kds-put s
	sleep 0.3
	printf 'a\nb\n' | kds-put s
	wait "$pid"
	[ "$(cat out)" = $'5\n5000\n1\n1' ]
	[ "$(segs s 0 | wc -l)" -ge 2 ]
	[ ! -s err ]
}

@test "AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER" {
	mkstream s
	ten s
	run -0 --separate-stderr kds-get $E -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 4)" s
	output_is "$(seq 4 10 | sed 's/^/r/')"
	run -0 --separate-stderr kds-get $E -i AFTER_SEQUENCE_NUMBER --sequence "$(seq_of 0 4)" s
	output_is "$(seq 5 10 | sed 's/^/r/')"
	run -0 --separate-stderr kds-get $E -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 1)" s
	output_is "$(lines 10 r)"
	run -0 --separate-stderr kds-get $E -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 10)" s
	output_is r10
	run -0 --separate-stderr kds-get $E -i AFTER_SEQUENCE_NUMBER --sequence "$(seq_of 0 10)" s
	[ -z "$output" ]
}

@test "AT_SEQUENCE_NUMBER in every one of many segments" {
	mkstream s --segment-bytes 4096
	for i in 1 2 3 4 5 6; do
		lines 100 "$((i * 1000))" | kds-put -k k s
	done
	n=$(segs s 0 | wc -l)
	[ "$n" -ge 3 ]
	for c in 1 2 99 100 101 250 399 400 401 599 600; do
		run -0 --separate-stderr kds-get $E -n 1 -i AT_SEQUENCE_NUMBER \
		    --sequence "$(seq_of 0 $c)" --format '%o\n' s
		output_is "$(seq_of 0 $c)"
		run -0 --separate-stderr kds-get $E -i AFTER_SEQUENCE_NUMBER \
		    --sequence "$(seq_of 0 $c)" --format '%o\n' s
		[ "${#lines[@]}" -eq $((600 - c)) ]
	done
	# every segment's first record, by name
	for f in $(segs s 0); do
		b=$(basename "$f" .seg)
		run -0 --separate-stderr kds-get $E -n 1 -i AT_SEQUENCE_NUMBER --sequence "$b" \
		    --format '%o\n' s
		output_is "$b"
	done
}

@test "AT_TIMESTAMP: the first record at or after the time" {
	mkstream s
	ten s
	run -0 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp $((T + 4)) s
	output_is "$(seq 4 10 | sed 's/^/r/')"
	run -0 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp $((T + 4)).001 s
	output_is "$(seq 5 10 | sed 's/^/r/')"
	run -0 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp 2025-11-28T10:00:07Z s
	output_is "$(seq 7 10 | sed 's/^/r/')"
	run -0 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp '2025-11-28T11:00:03+01:00' s
	output_is "$(seq 3 10 | sed 's/^/r/')"
	run -0 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp $((T - 86000)) s
	output_is "$(lines 10 r)"
	run -0 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp $((T + 11)) s
	[ -z "$output" ]
}

@test "AT_TIMESTAMP across many segments, with equal arrival times" {
	mkstream s --segment-bytes 4096
	for i in $(seq 0 19); do
		lines 50 "t$i-" | put_at $((T + i)) -k k s
	done
	[ "$(segs s 0 | wc -l)" -ge 4 ]
	# (not "i": bats's run sets a global i)
	for x in 0 1 7 13 19; do
		run -0 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp $((T + x)) s
		[ "${#lines[@]}" -eq $(((20 - x) * 50)) ]
		[ "${lines[0]}" = "t$x-1" ]
	done
}

@test "TRIM_HORIZON and AT_TIMESTAMP skip records past retention" {
	mkstream s -r 1h
	lines 3 old | put_at $T -k k s
	lines 3 new | put_at $((T + 1800)) -k k s
	export KDS_NOW=$((T + 3600))
	run -0 --separate-stderr kds-get $E -i TRIM_HORIZON s
	output_is "$(lines 3 old; lines 3 new)"
	export KDS_NOW=$((T + 3601))
	run -0 --separate-stderr kds-get $E -i TRIM_HORIZON s
	output_is "$(lines 3 new)"
	run -0 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp $T s
	output_is "$(lines 3 new)"
	export KDS_NOW=$((T + 5401))
	run -0 --separate-stderr kds-get $E -i TRIM_HORIZON s
	[ -z "$output" ]
}

@test "bad -i, --sequence, --timestamp: usage errors, exit 2" {
	mkstream s
	ten s
	run -2 --separate-stderr kds-get $E -i OLDEST s
	first_line_is "kds-get: bad iterator type 'OLDEST'"
	# a malformed number is a usage error, as a malformed time is
	for v in abc 0 1 -100000000000000000001 1000000000000000000001x; do
		run -2 --separate-stderr kds-get $E -i AT_SEQUENCE_NUMBER --sequence "$v" s
		first_line_is "kds-get: bad sequence number '$v'"
	done
	run -2 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp yesterday s
	first_line_is "kds-get: bad timestamp 'yesterday': ISO 8601 or epoch seconds"
	run -2 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp 2025-02-30 s
	first_line_is "kds-get: bad timestamp '2025-02-30': ISO 8601 or epoch seconds"
	run -2 --separate-stderr kds-get $E -n x s
	first_line_is "kds-get: bad limit 'x'"
	run -2 --separate-stderr kds-get $E -n -1 s
	first_line_is "kds-get: bad limit '-1'"
}

@test "an iterator type without its --sequence or --timestamp is a usage error" {
	mkstream s
	run -2 --separate-stderr kds-get $E -i AT_SEQUENCE_NUMBER s
	first_line_is "kds-get: --sequence goes with AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER, and they need it"
	run -2 --separate-stderr kds-get $E -i AFTER_SEQUENCE_NUMBER s
	first_line_is "kds-get: --sequence goes with AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER, and they need it"
	run -2 --separate-stderr kds-get $E -i AT_TIMESTAMP s
	first_line_is "kds-get: --timestamp goes with AT_TIMESTAMP, and it needs it"
	[ -z "$output" ]
	run -2 --separate-stderr kds-get $E -i LATEST --timestamp $T s
	first_line_is "kds-get: --timestamp goes with AT_TIMESTAMP, and it needs it"
}

# Well formed but past the clock (KDS_NOW, T + 3000): a failure, not a
# usage error, with the stream and the time as given.
@test "AT_TIMESTAMP in the future: exit 1, the stream and the time named" {
	mkstream s
	ten s
	run -1 --separate-stderr kds-get $E --timestamp $((T + 3001)) s
	stderr_is "kds-get: s: timestamp $((T + 3001)) is in the future"
	[ -z "$output" ]
	run -1 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp 2025-11-28T11:00:00Z s
	stderr_is "kds-get: s: timestamp 2025-11-28T11:00:00Z is in the future"
	[ -z "$output" ]
}

# A sequence number names its shard: one the stream lacks, or one that
# is not among -s, is refused before anything is read.
@test "--sequence of a shard not in the stream, or not asked for with -s: exit 1" {
	mkstream s -n 3
	lines 6 r | kds-put s
	run -1 --separate-stderr kds-get $E --sequence "$(seq_of 6 1)" s
	stderr_is "kds-get: s: sequence number $(seq_of 6 1): no shard shardId-000000000006"
	[ -z "$output" ]
	run -1 --separate-stderr kds-get $E -i AFTER_SEQUENCE_NUMBER --sequence "$(seq_of 3 1)" s
	stderr_is "kds-get: s: sequence number $(seq_of 3 1): no shard shardId-000000000003"
	run -1 --separate-stderr kds-get $E -s 1 --sequence "$(seq_of 0 1)" s
	stderr_is "kds-get: s: sequence number $(seq_of 0 1) is not of the shards asked for"
	[ -z "$output" ]
	run -1 --separate-stderr kds-get $E -s 0 -s 1 --sequence "$(seq_of 0 1)" s
	stderr_is "kds-get: s: sequence number $(seq_of 0 1) is not of the shards asked for"
}

@test "-n: at most that many records, with and without -e" {
	mkstream s
	ten s
	run -0 --separate-stderr kds-get $E -n 3 -i TRIM_HORIZON s
	output_is $'r1\nr2\nr3'
	run -0 --separate-stderr timeout 10 kds-get -n 10 -i TRIM_HORIZON s
	output_is "$(lines 10 r)"
	run -0 --separate-stderr kds-get $E -n 100 -i TRIM_HORIZON s
	output_is "$(lines 10 r)"
	run -0 --separate-stderr kds-get $E -n 2 -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 5)" s
	output_is $'r5\nr6'
}

# three STREAM: a 3-shard stream, record "SHARD-I" put to each shard by -E.
three() {
	mkstream "$1" -n 3
	local k i
	for i in 0 1 2; do
		k=$(python3 -c "print($i * (2**128 // 3))")
		lines 4 "$i-" | put_at $((T + i)) -E "$k" -k x "$1" || return 1
	done
}

@test "-s: one shard, by number or by id; repeated; the rest not read" {
	three s
	run -0 --separate-stderr kds-get $E -s 1 s
	output_is "$(lines 4 1-)"
	run -0 --separate-stderr kds-get $E -s shardId-000000000002 s
	output_is "$(lines 4 2-)"
	run -0 --separate-stderr kds-get $E -s 2 -s 0 s
	output_is "$(lines 4 0-; lines 4 2-)"
	run -0 --separate-stderr kds-get $E --format '%p\n' s
	[ "$(sort -u <<<"$output" | wc -l)" -eq 3 ]
}

@test "-s: a shard that does not exist, or is not a shard id" {
	three s
	run -1 --separate-stderr kds-get $E -s 3 s
	stderr_is "kds-get: s: shardId-000000000003: no such shard"
	[ -z "$output" ]
	run -1 --separate-stderr kds-get $E -s shardId-000000000007 s
	stderr_is "kds-get: s: shardId-000000000007: no such shard"
	# a malformed shard id is a usage error, as a malformed time is
	for v in x shardId-1 shardId-0000000000001 -1; do
		run -2 --separate-stderr kds-get $E -s "$v" s
		[[ ${stderr_lines[0]} == "kds-get: "?("s: ")"bad shard id '$v'" ]] ||
		    { echo "-s $v: $stderr" >&2; return 1; }
	done
}

@test "shards are merged by arrival time, then shard number, each shard in order" {
	mkstream s -n 3
	k0=0
	k1=$(python3 -c 'print(2**128 // 3)')
	k2=$(python3 -c 'print(2 * (2**128 // 3))')
	put() { echo "$3" | put_at "$1" -k x -E "$2" s; }
	put $T.500 "$k2" a
	put $T.100 "$k1" b
	put $T.300 "$k0" c
	put $T.300 "$k2" d	# arrives at T.500: never before the shard's last
	put $T.300 "$k1" e
	put $T.900 "$k0" f
	put $T.100 "$k0" g	# arrives at T.900
	put $T.700 "$k1" h
	run -0 --separate-stderr kds-get $E --format '%T %p %s\n' s
	output_is "1764324000100 shardId-000000000001 b
1764324000300 shardId-000000000000 c
1764324000300 shardId-000000000001 e
1764324000500 shardId-000000000002 a
1764324000500 shardId-000000000002 d
1764324000700 shardId-000000000001 h
1764324000900 shardId-000000000000 f
1764324000900 shardId-000000000000 g"
}

@test "merge of 4 shards x 2,000 records keeps each shard's order" {
	mkstream s -n 4
	for i in 1 2 3 4 5; do
		lines 400 "$i " | put_at $((T + i)).$i s
	done
	kds-get $E --format '%T %p %o %s\n' s >out
	[ "$(wc -l <out)" -eq 2000 ]
	[ "$(cut -d' ' -f4,5 out | sort -u | wc -l)" -eq 2000 ]
	# arrival never decreases, ties go by shard number; within a shard the
	# sequence numbers and the input order both increase
	awk '
	{ if ($1 < t || ($1 == t && $2 < sh)) { print "merge order broken at " NR; exit 1 }
	  t = $1; sh = $2
	  n = $4 * 1000 + $5
	  if (($2 in last) && (n <= last[$2] || ($3 "") <= (seq[$2] ""))) {
		print "shard order broken at " NR ": " $0; exit 1 }
	  last[$2] = n; seq[$2] = $3 }' out
}

@test "-o lines is the default; -0 ends records with NUL" {
	mkstream s
	printf 'a b\0c\nd\0' | kds-put -0 s
	run -0 --separate-stderr kds-get $E -o lines s
	output_is $'a b\nc\nd'
	kds-get $E -0 s >out
	printf 'a b\0c\nd\0' | cmp - out
	kds-get $E -o lines -0 s >out
	printf 'a b\0c\nd\0' | cmp - out
}

@test "-o raw: the data bytes and nothing else" {
	mkstream s
	printf 'ab\ncd\n\nef' | kds-put s
	kds-get $E -o raw s >out
	printf 'abcdef' | cmp - out
}

@test "-o jsonl: empty data, as the first record, is \"Data\":\"\"" {
	mkstream s
	printf '\nb\n' | kds-put -k k s
	run -0 --separate-stderr kds-get $E -o jsonl s
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} == *'"PartitionKey":"k","Data":""}' ]]
	[[ ${lines[1]} == *'"PartitionKey":"k","Data":"Yg=="}' ]]
}

@test "-o jsonl: the Kinesis record, exactly" {
	mkstream s -n 2
	echo hello | put_at 1764324000.123 -k k -E 0 s
	printf 'x\0y' | put_at 1764324000.789 -0 -k 'q"\' -E "$HMAX" s
	run -0 --separate-stderr kds-get $E -o jsonl s
	output_is '{"ShardId":"shardId-000000000000","SequenceNumber":"100000000000000000001","ApproximateArrivalTimestamp":1764324000.123,"PartitionKey":"k","Data":"aGVsbG8="}
{"ShardId":"shardId-000000000001","SequenceNumber":"200000000000000000001","ApproximateArrivalTimestamp":1764324000.789,"PartitionKey":"q\"\\","Data":"eA=="}
{"ShardId":"shardId-000000000001","SequenceNumber":"200000000000000000002","ApproximateArrivalTimestamp":1764324000.789,"PartitionKey":"q\"\\","Data":"eQ=="}'
}

@test "-o jsonl: any partition key is valid JSON that reads back the same" {
	mkstream s
	python3 -c '
import json, base64
keys = ["tab\there", "nl\nx", "cr\r", "ctl\x01\x1f\x7f", "quote\"", "back\\slash",
        "caf\u00e9", "\U0001f600", "slash/", "\u2028\u2029", "<>&\x27"]
for k in keys:
    print(json.dumps({"PartitionKey": k, "Data": base64.b64encode(k.encode()).decode()}))
' | kds-put -i jsonl s
	kds-get $E -o jsonl s | python3 -c '
import base64, json, sys
n = 0
for line in sys.stdin:
    r = json.loads(line)
    assert base64.b64decode(r["Data"]).decode() == r["PartitionKey"], r
    n += 1
assert n == 11, n
'
}

@test "--format: every token" {
	mkstream s -n 2
	echo hello | put_at 1764324000.123 -k user-1 s
	want_hash=$(python3 -c 'import hashlib; print(int.from_bytes(hashlib.md5(b"user-1").digest(), "big"))')
	want_shard=$(python3 -c "print('shardId-%012d' % ($want_hash // (2**128 // 2)))")
	n=${want_shard: -1}
	run -0 --separate-stderr kds-get $E --format '%s|%S|%k|%K|%o|%T|%p|%t|%h|%%\n' s
	output_is "hello|5|user-1|6|$(seq_of "$n" 1)|1764324000123|$want_shard|s|$want_hash|%"
}

@test "--format: %t is the stream operand as given" {
	mkdir d
	mkstream d/s
	echo a | kds-put d/s
	run -0 --separate-stderr kds-get $E --format '%t\n' d/s
	output_is d/s
}

@test "--format: escapes \\n \\t \\r \\0 \\\\" {
	mkstream s
	echo a | kds-put s
	kds-get $E --format '%s\t%s\r\\%s\0\n' s >out
	printf 'a\ta\r\\a\0\n' | cmp - out
}

@test "--format: no newline unless asked for" {
	mkstream s
	printf 'a\nb\n' | kds-put s
	run -0 --separate-stderr kds-get $E --format '[%s]' s
	output_is '[a][b]'
}

@test "--format: unknown token or trailing % is a usage error" {
	mkstream s
	echo a | kds-put s
	run -2 --separate-stderr kds-get $E --format '%z' s
	first_line_is "kds-get: format: unknown token '%z'"
	run -2 --separate-stderr kds-get $E --format '%s %q\n' s
	first_line_is "kds-get: format: unknown token '%q'"
	run -2 --separate-stderr kds-get $E --format '\q' s
	first_line_is "kds-get: format: unknown escape '\q'"
	[ -z "$output" ]
	# not "unknown token '% '": there is no space in the format
	run -2 --separate-stderr kds-get $E --format 'x%' s
	first_line_is "kds-get: format: '%' at the end"
	run -2 --separate-stderr kds-get $E --format 'x\' s
	first_line_is "kds-get: format: '\\' at the end"
}

@test "-o: an unknown format is a usage error" {
	mkstream s
	run -2 --separate-stderr kds-get $E -o xml s
	first_line_is "kds-get: bad output format 'xml': lines, raw or jsonl"
}

@test "an empty stream: nothing, exit 0" {
	mkstream s -n 3
	run -0 --separate-stderr kds-get $E s
	[ -z "$output" ]
	[ -z "$stderr" ]
	run -0 --separate-stderr kds-get $E -i LATEST s
	run -0 --separate-stderr kds-get $E -i AT_TIMESTAMP --timestamp $T s
	[ -z "$output" ]
}

@test "a closed pipe ends kds-get quietly, like head" {
	mkstream s
	lines 100000 | kds-put -k k s
	run -0 --separate-stderr bash -c 'kds-get $E s | head -n 1; echo "status ${PIPESTATUS[0]}" >&2'
	output_is 1
	[[ $stderr == "status 0" || $stderr == "status 141" ]]
}

@test "a full stdout: exit 1, says so" {
	mkstream s
	echo a | kds-put s
	run -1 --separate-stderr bash -c 'kds-get $E s >/dev/full'
	[[ $stderr == "kds-get: "*"No space left on device" ]]
	[ "${#stderr_lines[@]}" -eq 1 ]
}

# stdout goes out through two 1 MiB buffers, the full one written by a
# second thread: output across many buffers, records larger than one, and
# the ends of output (closed pipe, write error) while that thread writes.

@test "500,000 short records come out byte for byte" {
	mkstream s
	lines 500000 r >in
	kds-put --sync=never s <in
	kds-get $E s >out
	same out in
	kds-get $E s | cat >piped
	same piped in
}

@test "records of 1 MiB and 700 KiB, across buffer ends, byte for byte" {
	mkstream s
	# key "k" and data up to KDS_MAX_RECORD, the largest a record may be
	python3 - <<'PY'
import random
random.seed(7)
sizes = [1048575, 716800, 716800, 1, 1048575, 524288, 1048574, 716799, 3]
with open("in", "wb") as f:
    for i, n in enumerate(sizes):
        f.write(bytes(random.choice(b"abcdefghij") for _ in range(n)) + b"\n")
PY
	kds-put -k k s <in
	run -0 --separate-stderr kds-get $E --format '%S\n' s
	output_is "$(printf '%s\n' 1048575 716800 716800 1 1048575 524288 1048574 716799 3)"
	kds-get $E s >out
	same out in
	kds-get $E -0 s | tr '\0' '\n' >out0
	same out0 in
	kds-get $E -o raw s >raw
	[ "$(filesize raw)" -eq $(($(filesize in) - 9)) ]
	# jsonl: each record's base64 is larger than a buffer
	kds-get $E -o jsonl s | python3 -c '
import base64, json, sys
got = b"".join(base64.b64decode(json.loads(l)["Data"]) + b"\n" for l in sys.stdin)
sys.stdout.buffer.write(got)' >json
	same json in
}

@test "a closed pipe during a long output: exit 0, nothing on stderr" {
	mkstream s
	lines 500000 r | kds-put --sync=never s
	run -0 --separate-stderr bash -c 'kds-get $E s | head -n 1; echo "status ${PIPESTATUS[0]}"'
	output_is $'r1\nstatus 0'
	[ -z "$stderr" ]
}

@test "a full stdout: the one message, for a record and for a long output" {
	mkstream s
	echo a | kds-put s
	run -1 --separate-stderr bash -c 'kds-get $E s >/dev/full'
	stderr_is "kds-get: s: stdout: No space left on device"
	lines 500000 r | kds-put --sync=never s
	run -1 --separate-stderr bash -c 'kds-get $E s >/dev/full'
	stderr_is "kds-get: s: stdout: No space left on device"
	run -1 --separate-stderr bash -c 'kds-get $E -c c s >/dev/full'
	stderr_is "kds-get: s: stdout: No space left on device"
	# nothing was delivered, so nothing was checkpointed
	run -0 --separate-stderr kds-get $E -c c -n 1 s
	output_is a
}

# The corruption tests use records of one size: key "k", data "rec-NN", so
# a frame is 32 + 1 + 6 = 39 bytes and frame j (from 0) starts at 48 + 39 j.
twenty() {
	mkstream "$1" "${@:2}"
	seq -f 'rec-%02.0f' 1 20 | kds-put -k k "$1"
}

@test "a flipped data byte: shard, segment, offset, exit 1, earlier records only" {
	twenty s
	seg=$(last_seg s 0)
	flip "$seg" $((48 + 39 * 5 + 35))
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: shardId-000000000000/100000000000000000001.seg: offset 243: bad checksum"
	output_is "$(seq -f 'rec-%02.0f' 1 5)"
}

@test "a flipped checksum byte of the first frame: nothing printed" {
	twenty s
	flip "$(last_seg s 0)" 48
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: shardId-000000000000/100000000000000000001.seg: offset 48: bad checksum"
	[ -z "$output" ]
}

@test "a flipped byte in the last frame is corruption, not a torn tail" {
	twenty s
	seg=$(last_seg s 0)
	flip "$seg" $((48 + 39 * 19 + 34))
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: shardId-000000000000/100000000000000000001.seg: offset 789: bad checksum"
	output_is "$(seq -f 'rec-%02.0f' 1 19)"
}

@test "corruption is found with AT_SEQUENCE_NUMBER and -s too" {
	twenty s
	flip "$(last_seg s 0)" $((48 + 39 * 10 + 36))
	run -1 --separate-stderr kds-get $E -s 0 -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 9)" s
	stderr_is "kds-get: s: shardId-000000000000/100000000000000000001.seg: offset 438: bad checksum"
	output_is $'rec-09\nrec-10'
}

@test "corruption in shard 1 names shard 1's segment" {
	mkstream s -n 2
	k1=$(python3 -c 'print(2**127)')
	seq -f 'rec-%02.0f' 1 20 | kds-put -k k -E 0 s
	seq -f 'rec-%02.0f' 1 20 | kds-put -k k -E "$k1" s
	flip "$(last_seg s 1)" $((48 + 39 * 3 + 33))
	run -1 --separate-stderr kds-get $E -s 1 s
	stderr_is "kds-get: s: shardId-000000000001/200000000000000000001.seg: offset 165: bad checksum"
	output_is "$(seq -f 'rec-%02.0f' 1 3)"
	run -0 --separate-stderr kds-get $E -s 0 s
	[ "${#lines[@]}" -eq 20 ]
}

# An I/O error reading a segment (strace -P: only that file's reads):
# exit 1, the segment and the call named, not taken for damage.
@test "a read error in a segment: exit 1, the segment and 'read' named" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	ten s
	run -1 --separate-stderr strace -f -o /dev/null -P "$PWD/$(last_seg s 0)" \
	    -e trace=read,pread64 -e inject=read,pread64:error=EIO kds-get $E s
	stderr_is "kds-get: s: shardId-000000000000/$(seq_of 0 1).seg: read: Input/output error"
	[ -z "$output" ]
}

# Listing a shard's segments failing (out of descriptors with many shards
# open, an I/O error in the directory): exit 1, the shard's directory and
# the call named, as any other file of the stream is.
@test "listing a shard's segments failing: exit 1, the shard and the call named" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	ten s
	d=$(shard_dir s 0)
	run -1 --separate-stderr strace -f -o /dev/null -P "$PWD/$d" -e trace=openat \
	    -e inject=openat:error=EMFILE:when=1 kds-get $E s
	stderr_is "kds-get: s: ${d#s/}: opendir: Too many open files"
	[ -z "$output" ]
	run -1 --separate-stderr strace -f -o /dev/null -P "$PWD/$d" -e trace=getdents64 \
	    -e inject=getdents64:error=EIO:when=1 kds-get $E s
	stderr_is "kds-get: s: ${d#s/}: readdir: Input/output error"
	[ -z "$output" ]
}

@test "a damaged segment header: offset 0, nothing printed" {
	twenty s
	flip "$(last_seg s 0)" 2
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: shardId-000000000000/100000000000000000001.seg: offset 0: bad segment header"
	[ -z "$output" ]
	twenty t
	flip "$(last_seg t 0)" 20	# first counter: the header checksum catches it
	run -1 --separate-stderr kds-get $E t
	stderr_is "kds-get: t: shardId-000000000000/100000000000000000001.seg: offset 0: bad segment header"
}

# three_segs STREAM: segments of 4096 bytes at most, filled with records
# rec-001..rec-300 (40-byte frames).
three_segs() {
	mkstream "$1" --segment-bytes 4096
	seq -f "rec-%03.0f" 1 300 | kds-put -k k "$1"
	[ "$(segs "$1" 0 | wc -l)" -ge 3 ]
}

@test "an earlier segment cut inside a frame is corruption, not a torn tail" {
	three_segs s
	first=$(segs s 0 | head -n 1)
	read -r off len counter < <(frames "$first" | tail -n 1)
	[ $((off + len)) -eq "$(filesize "$first")" ]
	truncate -s -5 "$first"
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: shardId-000000000000/100000000000000000001.seg: offset $off: truncated frame"
	output_is "$(seq -f "rec-%03.0f" 1 $((counter - 1)))"
}

@test "an earlier segment cut at a frame boundary: the lost record is reported" {
	three_segs s
	first=$(segs s 0 | head -n 1)
	second=$(segs s 0 | sed -n 2p)
	truncate -s -40 "$first"
	# the second segment's first counter no longer follows the first's last
	run -1 --separate-stderr kds-get $E s
	stderr_is "kds-get: s: shardId-000000000000/${second##*/}: offset 0: first sequence number does not follow the previous segment"
	c=$(basename "$second" .seg)
	c=$((10#${c: -8}))
	output_is "$(seq -f "rec-%03.0f" 1 $((c - 2)))"
}

@test "the index is a cache: missing, garbage or short, answers are the same" {
	mkstream s --segment-bytes 1M
	seq -f 'record-%06.0f' 1 30000 | kds-put -k k s
	[ "$(segs s 0 | wc -l)" -ge 2 ]
	ls s/shardId-000000000000/*.idx >/dev/null
	probes="1 2 1000 4321 15000 16001 22222 29999 30000"
	ask() {
		local c
		for c in $probes; do
			kds-get $E -n 1 -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 $c)" \
			    --format '%o %s\n' s
			kds-get $E -n 1 -i AFTER_SEQUENCE_NUMBER --sequence "$(seq_of 0 $c)" \
			    --format '%o %s\n' s
		done
	}
	ask >want
	[ "$(head -n 1 want)" = "$(seq_of 0 1) record-000001" ]
	[ "$(sed -n 7p want)" = "$(seq_of 0 4321) record-004321" ]
	[ "$(wc -l <want)" -eq 17 ]
	cp -a s pristine
	for idx in s/shardId-000000000000/*.idx; do
		head -c 1000 /dev/urandom >"$idx"
	done
	run -0 ask
	diff <(echo "$output") want
	rm -rf s && cp -a pristine s
	for idx in s/shardId-000000000000/*.idx; do
		truncate -s -7 "$idx"
	done
	run -0 ask
	diff <(echo "$output") want
	rm -f s/shardId-000000000000/*.idx
	run -0 ask
	diff <(echo "$output") want
	# entries that check out but are out of order
	rm -rf s && cp -a pristine s
	for idx in s/shardId-000000000000/*.idx; do
		python3 - "$idx" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
n = len(b) // 32
for i in range(0, n - 1, 2):
    a, c = b[i*32:(i+1)*32], b[(i+1)*32:(i+2)*32]
    b[i*32:(i+1)*32], b[(i+1)*32:(i+2)*32] = c, a
open(p, "wb").write(bytes(b))
EOF
	done
	run -0 ask
	diff <(echo "$output") want
	have_xxhash || skip "libxxhash.so.0: cannot forge index entries"
	# entries that check out but point at another frame than their counter's
	rm -rf s && cp -a pristine s
	for idx in s/shardId-000000000000/*.idx; do
		python3 - "$idx" <<'EOF'
import ctypes, struct, sys
f = ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed
f.restype = ctypes.c_uint64
f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
p = sys.argv[1]
raw = open(p, "rb").read()
e = [struct.unpack_from("<QqQQ", raw, i) for i in range(0, len(raw) - 31, 32)]
out = b""
for i, (c, a, off, _) in enumerate(e):
    off2 = e[(i + 1) % len(e)][2]
    body = struct.pack("<QqQ", c, a, off2)
    out += body + struct.pack("<Q", f(body, 24, 0))
open(p, "wb").write(out)
EOF
	done
	run -0 ask
	diff <(echo "$output") want
}
