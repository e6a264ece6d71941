#!/usr/bin/env bats
# 20-put: kds-put, every option, the Kinesis limits on keys and sizes, and
# what happens to the records around a bad one.

load helper

setup() {
	kds_setup
	fixed_clock
}

# get_all STREAM [kds-get options]: every record, from the start, then exit.
get_all() {
	local s=$1
	shift
	kds-get $E -i TRIM_HORIZON "$@" "$s"
}

# aws_shard_of N: for each partition key on stdin (one a line, UTF-8), the
# shard id AWS routes it to in a new N-shard stream, by python3 hashlib.
aws_shard_of() {
	python3 -c '
import hashlib, sys
n = int(sys.argv[1])
h = 2**128 // n
for line in sys.stdin.buffer:
    k = line.rstrip(b"\n")
    v = int.from_bytes(hashlib.md5(k).digest(), "big")
    print("shardId-%012d" % min(v // h, n - 1))
' "$1"
}

@test "lines: each line is one record, read back in order" {
	mkstream s
	run -0 --separate-stderr kds-put s < <(printf 'a\nbb\nccc\n')
	[ -z "$output" ]
	[ -z "$stderr" ]
	run -0 --separate-stderr get_all s
	output_is $'a\nbb\nccc'
}

@test "a last line without newline is a record; an empty line is empty data" {
	mkstream s
	printf 'a\n\nb' | kds-put s
	run -0 --separate-stderr get_all s --format '[%s]\n'
	output_is $'[a]\n[]\n[b]'
}

@test "empty input stores nothing and exits 0" {
	mkstream s
	run -0 --separate-stderr kds-put -p s </dev/null
	[ -z "$output" ]
	[ -z "$stderr" ]
	run -0 --separate-stderr get_all s
	[ -z "$output" ]
}

@test "no -k, no -f: the partition key is the input record number" {
	mkstream s
	lines 5 x | kds-put s
	run -0 --separate-stderr get_all s --format '%k %s\n'
	output_is $'1 x1\n2 x2\n3 x3\n4 x4\n5 x5'
}

@test "-k: one partition key for every record, so one shard" {
	mkstream s -n 4
	run -0 --separate-stderr kds-put -p -k user-42 s < <(lines 20)
	want=$(echo user-42 | aws_shard_of 4)
	[ "$(cut -d' ' -f1 <<<"$output" | sort -u)" = "$want" ]
	run -0 --separate-stderr get_all s --format '%k %p %s\n'
	[ "$(sort -u <<<"$output" | wc -l)" -eq 20 ]
	[ "$(cut -d' ' -f1,2 <<<"$output" | sort -u)" = "user-42 $want" ]
	[ "$(cut -d' ' -f3 <<<"$output")" = "$(lines 20)" ]
}

@test "-f -d: the partition key is a field; the data is the whole line" {
	mkstream s
	printf 'u1,click,3\nu2,view,1\n' | kds-put -f 1 -d , s
	run -0 --separate-stderr get_all s --format '%k|%s\n'
	output_is $'u1|u1,click,3\nu2|u2,view,1'
	printf 'u3,buy,7\n' | kds-put -f 3 -d , s
	run -0 --separate-stderr get_all s -n 3 --format '%k|%s\n'
	[ "${lines[2]}" = '7|u3,buy,7' ]
}

@test "-f without -d splits at tabs" {
	mkstream s
	printf 'u1\tclick\nu2\tview x\n' | kds-put -f 2 s
	run -0 --separate-stderr get_all s --format '%k|%s\n'
	output_is $'click|u1\tclick\nview x|u2\tview x'
}

@test "-f: a line without that field is refused, naming the record" {
	mkstream s
	run -1 --separate-stderr kds-put -f 3 -d , s < <(printf 'a,b,c\na,b\n')
	stderr_is "kds-put: s: record 2: no field 3"
	run -0 --separate-stderr get_all s
	output_is 'a,b,c'
}

@test "-k and -f together is a usage error" {
	mkstream s
	run -2 --separate-stderr kds-put -k a -f 1 s </dev/null
	first_line_is "kds-put: -k and -f exclude each other"
	run -2 --separate-stderr kds-put -i jsonl -k a s </dev/null
	first_line_is "kds-put: -i jsonl takes the partition key from each record"
}

@test "-0: records end with NUL and may hold newlines" {
	mkstream s
	printf 'one\nline two\0\0three\0four' | kds-put -0 s
	get_all s -0 >out
	printf 'one\nline two\0\0three\0four\0' >want
	cmp out want
	run -0 --separate-stderr get_all s --format '%k\n'
	output_is $'1\n2\n3\n4'
}

@test "-0 with -f -d: fields of NUL-ended records" {
	mkstream s
	printf 'k1 a\nb\0k2 c\0' | kds-put -0 -f 1 -d ' ' s
	run -0 --separate-stderr get_all s --format '%k=%S\n'
	output_is $'k1=6\nk2=4'
}

@test "-E: an explicit hash key picks the shard, whatever the key" {
	mkstream s -n 4
	# with 4 shards, h = 2^126: the boundaries are 2^126, 2^127, 3 * 2^126
	b1=$(python3 -c 'print(2**126)')
	b2=$(python3 -c 'print(2**127)')
	check() {
		run -0 --separate-stderr kds-put -p -k same -E "$1" s <<<"x"
		[ "${output%% *}" = "shardId-00000000000$2" ] || {
			echo "-E $1: $output, expected shard $2" >&2
			return 1
		}
	}
	check 0 0
	check "$(python3 -c 'print(2**126 - 1)')" 0
	check "$b1" 1
	check "$(python3 -c 'print(2**127 - 1)')" 1
	check "$b2" 2
	check "$(python3 -c 'print(3 * 2**126)')" 3
	check "$HMAX" 3
}

@test "-E: not a number, negative or 2^128 and above is a usage error" {
	mkstream s
	for v in abc -1 '' ' 1' 1x 0x10 1e3 340282366920938463463374607431768211456 \
	    999999999999999999999999999999999999999999; do
		run -2 --separate-stderr kds-put -E "$v" s </dev/null
		first_line_is "kds-put: bad explicit hash key '$v': a decimal in [0, 2^128-1]"
	done
	run -0 --separate-stderr get_all s
	[ -z "$output" ]
}

@test "-i jsonl: PartitionKey, base64 Data and ExplicitHashKey" {
	mkstream s -n 2
	cat >in <<EOF
{"PartitionKey":"k1","Data":"aGVsbG8="}
{"Data":"d29ybGQ=","PartitionKey":"caf\u00e9"}
  { "PartitionKey" : "k3" , "Data" : "" , "ExplicitHashKey" : "$HMAX" }
{"PartitionKey":"k4","Data":"AAEC/w==","ExplicitHashKey":"0"}
EOF
	run -0 --separate-stderr kds-put -i jsonl -p s <in
	[ "${#lines[@]}" -eq 4 ]
	[[ ${lines[2]} == "shardId-000000000001 2"* ]]
	[[ ${lines[3]} == "shardId-000000000000 1"* ]]
	run -0 --separate-stderr get_all s -s 1 --format '%k %S\n'
	[[ $output == *"k3 0"* ]]
	get_all s -o jsonl | python3 -c '
import base64, json, sys
recs = {r["PartitionKey"]: base64.b64decode(r["Data"]) for r in map(json.loads, sys.stdin)}
want = {"k1": b"hello", "café": b"world", "k3": b"", "k4": b"\x00\x01\x02\xff"}
assert recs == want, recs
'
}

@test "-i jsonl: data with newlines and every byte survives" {
	mkstream s
	python3 -c '
import base64, json
print(json.dumps({"PartitionKey": "bin", "Data": base64.b64encode(bytes(range(256)) * 3).decode()}))
print(json.dumps({"PartitionKey": "nl", "Data": base64.b64encode(b"a\nb\r\n\0").decode()}))
' | kds-put -i jsonl s
	get_all s -o raw >out
	python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 3 + b"a\nb\r\n\0")' >want
	cmp out want
}

# bad_jsonl LINE MESSAGE: the second of three records is LINE; kds-put
# stores the first, refuses the second with MESSAGE and exits 1.
bad_jsonl() {
	rm -rf s
	mkstream s
	printf '%s\n' '{"PartitionKey":"a","Data":"YQ=="}' "$1" \
	    '{"PartitionKey":"c","Data":"Yw=="}' >in
	run -1 --separate-stderr kds-put -i jsonl -p s <in
	stderr_is "kds-put: s: record 2: $2"
	output_is "shardId-000000000000 100000000000000000001"
	run -0 --separate-stderr get_all s
	output_is a
}

@test "-i jsonl: bad lines are refused, naming the record" {
	bad_jsonl 'not json' "bad JSON at column 3: '[' or '{' expected near 'not'"
	bad_jsonl '' "bad JSON at column 0: '[' or '{' expected near end of file"
	bad_jsonl '["PartitionKey","a"]' 'not a JSON object'
	bad_jsonl '{"PartitionKey":"a","Data":"YQ=="' \
	    "bad JSON at column 33: '}' expected near end of file"
	bad_jsonl '{"Data":"YQ=="}' 'PartitionKey missing'
	bad_jsonl '{"PartitionKey":"b"}' 'Data missing'
	bad_jsonl '{"PartitionKey":1,"Data":"YQ=="}' 'PartitionKey is not a string'
	bad_jsonl '{"PartitionKey":"b","Data":"not base64!"}' 'Data is not valid base64'
	bad_jsonl '{"PartitionKey":"b","Data":"YQ="}' 'Data is not valid base64'
	bad_jsonl '{"PartitionKey":"","Data":"YQ=="}' 'empty partition key'
	bad_jsonl '{"PartitionKey":"b","Data":"YQ==","ExplicitHashKey":"x"}' \
	    "explicit hash key 'x' is not a decimal in [0, 2^128-1]"
	bad_jsonl '{"PartitionKey":"b","Data":"YQ==","ExplicitHashKey":"-1"}' \
	    "explicit hash key '-1' is not a decimal in [0, 2^128-1]"
	big=$(python3 -c 'print(2**128)')
	bad_jsonl "{\"PartitionKey\":\"b\",\"Data\":\"YQ==\",\"ExplicitHashKey\":\"$big\"}" \
	    "explicit hash key '$big' is not a decimal in [0, 2^128-1]"
	bad_jsonl '{"PartitionKey":"b","Data":"YQ==","ExplicitHashKey":5}' \
	    'ExplicitHashKey is not a string'
}

# A misspelt field must not be ignored: "ExplicitHashkey" would route the
# record by MD5 instead, silently.
@test "-i jsonl: an unknown field is refused, naming it" {
	bad_jsonl '{"PartitionKey":"b","Data":"YQ==","ExplicitHashkey":"0"}' \
	    "unknown field 'ExplicitHashkey'"
	bad_jsonl '{"PartitionKey":"b","Data":"YQ==","Bogus":1}' "unknown field 'Bogus'"
}

@test "-p: 'SHARD SEQUENCE' per record, in input order, across shards" {
	mkstream s -n 4
	run -0 --separate-stderr kds-put -p s < <(lines 1000 r)
	[ "${#lines[@]}" -eq 1000 ]
	# each shard's numbers are 1, 2, 3, ... in input order
	awk '
	$1 !~ /^shardId-00000000000[0-3]$/ { print "bad shard " NR ": " $0; exit 1 }
	{
		sh = substr($1, 9) + 0
		c[sh]++
		want = sprintf("%d%020d", sh + 1, c[sh])
		if ($2 != want) { print "line " NR ": " $2 " expected " want; exit 1 }
	}' <<<"$output"
	# and each acknowledgement names the record of that input line
	get_all s --format '%o %s\n' | sort >got
	paste -d' ' <(cut -d' ' -f2 <<<"$output") <(lines 1000 r) | sort >want
	same got want
}

@test "-o jsonl: one object a record, in input order; -o text is -p" {
	mkstream s -n 2
	run -0 --separate-stderr kds-put -o jsonl -k k -E 0 s < <(printf 'a\nb\n')
	output_is '{"ShardId":"shardId-000000000000","SequenceNumber":"100000000000000000001"}
{"ShardId":"shardId-000000000000","SequenceNumber":"100000000000000000002"}'
	run -0 --separate-stderr kds-put -p -o jsonl -k k -E "$HMAX" s < <(printf 'c\n')
	output_is '{"ShardId":"shardId-000000000001","SequenceNumber":"200000000000000000001"}'
	run -0 --separate-stderr kds-put -o text -k k -E 0 s < <(printf 'd\n')
	output_is 'shardId-000000000000 100000000000000000003'
	run -0 --separate-stderr kds-put -o jsonl -p -k k -E 0 s < <(printf 'e\n')
	output_is '{"ShardId":"shardId-000000000000","SequenceNumber":"100000000000000000004"}'
}

@test "bad -i, -o, --sync values are usage errors" {
	mkstream s
	run -2 --separate-stderr kds-put -i csv s </dev/null
	first_line_is "kds-put: bad input format 'csv': lines or jsonl"
	run -2 --separate-stderr kds-put -o xml s </dev/null
	first_line_is "kds-put: bad output format 'xml': text or jsonl"
	run -2 --separate-stderr kds-put --sync=sometimes s </dev/null
	first_line_is "kds-put: bad --sync 'sometimes': exit, always or never"
	run -2 --separate-stderr kds-put -f 0 s </dev/null
	first_line_is "kds-put: bad field number '0'"
	run -2 --separate-stderr kds-put -f 1 -d ab s </dev/null
	first_line_is "kds-put: bad delimiter 'ab': one character"
}

@test "--sync=exit, always and never all store the records" {
	mkstream s
	for m in exit always never; do
		lines 3 "$m-" | kds-put --sync=$m s
	done
	run -0 --separate-stderr get_all s
	output_is "$(lines 3 exit-; lines 3 always-; lines 3 never-)"
}

@test "partition key of 256 characters is accepted, in 1, 2 and 4 byte UTF-8" {
	mkstream s
	a=$(printf 'a%.0s' $(seq 256))
	e=$(printf '\xc3\xa9%.0s' $(seq 256))
	g=$(printf '\xf0\x9f\x98\x80%.0s' $(seq 256))
	printf '%s\t1\n%s\t2\n%s\t3\n' "$a" "$e" "$g" | kds-put -f 1 s
	run -0 --separate-stderr get_all s --format '%K %k\n'
	output_is "256 $a
512 $e
1024 $g"
	run -0 --separate-stderr kds-put -k "$g" s <<<x
}

@test "partition key of 257 characters is refused, naming the record" {
	mkstream s
	a=$(printf 'a%.0s' $(seq 257))
	run -1 --separate-stderr kds-put -f 1 s < <(printf 'ok\t1\n%s\t2\n' "$a")
	stderr_is "kds-put: s: record 2: partition key longer than 256 characters"
	e=$(printf '\xc3\xa9%.0s' $(seq 257))
	run -1 --separate-stderr kds-put -f 1 s < <(printf '%s\t3\n' "$e")
	stderr_is "kds-put: s: record 1: partition key longer than 256 characters"
	run -1 --separate-stderr kds-put -k "$a" s <<<x
	stderr_is "kds-put: s: record 1: partition key longer than 256 characters"
	run -0 --separate-stderr get_all s
	output_is $'ok\t1'
}

@test "an empty partition key is refused" {
	mkstream s
	run -1 --separate-stderr kds-put -f 1 -d , s < <(printf 'a,1\n,2\n')
	stderr_is "kds-put: s: record 2: empty partition key"
	run -0 --separate-stderr get_all s
	output_is 'a,1'
}

@test "a partition key that is not UTF-8 is refused" {
	mkstream s
	for k in '\xff' '\xc3' '\xc0\xaf' '\xed\xa0\x80' '\xf4\x90\x80\x80'; do
		run -1 --separate-stderr kds-put -f 1 s < <(printf "ok\tx\n$k\ty\n")
		stderr_is "kds-put: s: record 2: partition key is not valid UTF-8"
	done
	run -0 --separate-stderr get_all s --format '%k\n'
	[ "$(sort -u <<<"$output")" = ok ]
}

@test "key + data of exactly 1 MiB is stored; one byte more is refused" {
	mkstream s
	# record 1: key "1" (1 byte) + 1048575 bytes of data = 1 MiB exactly
	# record 2: key "2" + 1048576 bytes = 1 MiB + 1
	python3 -c '
import sys
w = sys.stdout.buffer
w.write(b"a" * 1048575 + b"\n")
w.write(b"b" * 1048576 + b"\n")
w.write(b"c\n")
' >in
	run -1 --separate-stderr kds-put -p s <in
	stderr_is "kds-put: s: record 2: record larger than 1048576 bytes (partition key and data)"
	[ "${#lines[@]}" -eq 1 ]
	run -0 --separate-stderr get_all s --format '%K %S %k\n'
	output_is '1 1048575 1'
	# the same with a long key: 256 + 1048320 is exactly 1 MiB
	k=$(printf 'k%.0s' $(seq 256))
	python3 -c '
import json, base64, sys
k = sys.argv[1]
print(json.dumps({"PartitionKey": k, "Data": base64.b64encode(b"y" * (1048576 - 256)).decode()}))
print(json.dumps({"PartitionKey": k, "Data": base64.b64encode(b"z" * (1048576 - 255)).decode()}))
' "$k" >in
	run -1 --separate-stderr kds-put -i jsonl s <in
	stderr_is "kds-put: s: record 2: record larger than 1048576 bytes (partition key and data)"
	run -0 --separate-stderr get_all s --format '%K %S\n'
	output_is $'1 1048575\n256 1048320'
	get_all s -n 2 -o raw | tail -c 1048320 | tr -d y | wc -c | grep -qx 0
}

@test "records before a bad one stay stored; those after are not; exit 1" {
	mkstream s -n 2
	a=$(printf 'a%.0s' $(seq 257))
	printf 'k1\tone\nk2\ttwo\n%s\tthree\nk4\tfour\nk5\tfive\n' "$a" >in
	run -1 --separate-stderr kds-put -p -f 1 s <in
	stderr_is "kds-put: s: record 3: partition key longer than 256 characters"
	[ "${#lines[@]}" -eq 2 ]
	run -0 --separate-stderr get_all s --format '%s\n'
	[ "$(sort <<<"$output")" = $'k1\tone\nk2\ttwo' ]
}

@test "the record number counts every input record, 10,000 in" {
	mkstream s
	{ lines 9999 | sed 's/^/k\t/'; printf '\tempty key\n'; } >in
	run -1 --separate-stderr kds-put -f 1 s <in
	stderr_is "kds-put: s: record 10000: empty partition key"
	run -0 --separate-stderr kds-get $E -i TRIM_HORIZON --format '%o\n' s
	[ "${#lines[@]}" -eq 9999 ]
	[ "${lines[9998]}" = "$(seq_of 0 9999)" ]
}

@test "--skip-invalid: stores the good records, counts the bad ones, exit 0" {
	mkstream s
	a=$(printf 'a%.0s' $(seq 257))
	printf 'k1\tone\n%s\ttwo\nk3\tthree\n\tfour\nk5\tfive\n' "$a" >in
	run -0 --separate-stderr kds-put --skip-invalid -f 1 s <in
	stderr_is "kds-put: s: skipped 2 invalid records (first: record 2: partition key longer than 256 characters)"
	run -0 --separate-stderr get_all s --format '%s\n'
	output_is $'k1\tone\nk3\tthree\nk5\tfive'
	run -0 --separate-stderr kds-put --skip-invalid -f 1 s < <(printf 'k\tfine\n')
	[ -z "$stderr" ]
}

@test "10,000 partition keys land in the shard MD5 says (python3 hashlib)" {
	mkstream s -n 7
	python3 -c '
import json, base64
for i in range(10000):
    k = ["user-%d" % i, "caf\u00e9-%d" % i, "\U0001f600%d" % i, "k %d/x" % i][i % 4]
    print(json.dumps({"PartitionKey": k, "Data": base64.b64encode(b"d%d" % i).decode()}))
' >in
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    print(json.loads(line)["PartitionKey"])
' in >keys
	run -0 --separate-stderr kds-put -i jsonl -p s <in
	[ "${#lines[@]}" -eq 10000 ]
	cut -d' ' -f1 <<<"$output" >got
	aws_shard_of 7 <keys >want
	same got want
	# and %h, read back, is MD5 of the key as a big-endian integer
	get_all s --format '%h %k\n' | python3 -c '
import hashlib, sys
n = 0
for line in sys.stdin.buffer:
    h, k = line.rstrip(b"\n").split(b" ", 1)
    assert int(h) == int.from_bytes(hashlib.md5(k).digest(), "big"), line
    n += 1
assert n == 10000, n
'
}

# kds-put(1): with neither -k nor -f, round-robin over the open shards in
# hash key order, each record keyed by its input number (from 1).
@test "no key: 10,000 records round-robin over 16 shards, keyed by number" {
	mkstream s -n 16
	run -0 --separate-stderr kds-put -p s < <(lines 10000)
	[ "${#lines[@]}" -eq 10000 ]
	cut -d' ' -f1 <<<"$output" >got
	python3 -c '
for i in range(10000):
    print("shardId-%012d" % (i % 16))' >want
	same got want
	get_all s --format '%k\n' | sort -n >keys
	seq 1 10000 >want
	same keys want
}

@test "KDS_NOW sets the arrival time, which never goes back within a shard" {
	mkstream s
	echo a | put_at 1764324000.123 s
	echo b | put_at 1764324010.5 s
	echo c | put_at 2025-11-28T10:00:05Z s
	echo d | put_at 1764324011 s
	run -0 --separate-stderr get_all s --format '%T %s\n'
	output_is $'1764324000123 a\n1764324010500 b\n1764324010500 c\n1764324011000 d'
}

@test "segments roll at --segment-bytes: a big record gets its own" {
	mkstream s --segment-bytes 4096
	echo small1 | kds-put s
	python3 -c 'print("B" * 10000)' | kds-put s
	echo small2 | kds-put s
	run -0 segs s 0
	[ "${#lines[@]}" -eq 3 ]
	[ "$(basename "${lines[0]}")" = "$(seq_of 0 1).seg" ]
	[ "$(basename "${lines[1]}")" = "$(seq_of 0 2).seg" ]
	[ "$(basename "${lines[2]}")" = "$(seq_of 0 3).seg" ]
	run -0 --separate-stderr get_all s --format '%S %o\n'
	output_is "6 $(seq_of 0 1)
10000 $(seq_of 0 2)
6 $(seq_of 0 3)"
}

@test "segments roll at --segment-bytes: many records, many segments" {
	mkstream s --segment-bytes 4096
	for i in 1 2 3 4 5 6 7 8; do
		lines 100 "$i-" | kds-put -k k s
	done
	run -0 segs s 0
	[ "${#lines[@]}" -ge 4 ]
	run -0 --separate-stderr get_all s
	output_is "$(for i in 1 2 3 4 5 6 7 8; do lines 100 "$i-"; done)"
}

@test "segments roll at --segment-age, by the clock the writer sees" {
	mkstream s --segment-age 1h
	echo a | put_at 1764324000 s
	echo b | put_at 1764325000 s
	[ "$(segs s 0 | wc -l)" -eq 1 ]
	echo c | put_at 1764327601 s
	[ "$(segs s 0 | wc -l)" -eq 2 ]
	[ "$(basename "$(last_seg s 0)")" = "$(seq_of 0 3).seg" ]
	echo d | put_at 1764327602 s
	[ "$(segs s 0 | wc -l)" -eq 2 ]
	run -0 --separate-stderr get_all s
	output_is $'a\nb\nc\nd'
}

@test "-p to a full stdout: exit 1, says so, the stream named; the records stay stored" {
	mkstream s
	run -1 --separate-stderr bash -c 'echo a | kds-put -p s >/dev/full'
	stderr_is "kds-put: s: stdout: No space left on device"
	# acks of a batch big enough to be written before the end of input
	run -1 --separate-stderr bash -c 'seq 1 20000 | kds-put -p s >/dev/full'
	stderr_is "kds-put: s: stdout: No space left on device"
	run -0 kds-get $E -n 1 s
	output_is a
}

# A failed read of the input names it, as a failed write of stdout does:
# "stdin", not the bare error (here a directory for stdin: EISDIR).
@test "a read error on stdin: exit 1, one line naming stdin, nothing stored" {
	mkstream s
	run -1 --separate-stderr kds-put s <.
	stderr_is "kds-put: s: stdin: Is a directory"
	[ -z "$output" ]
	run -0 --separate-stderr kds-get $E s
	[ -z "$output" ]
}

# A bad record stops kds-put; the producer is then closed, and when that
# fails too (the fsync at the end of --sync=exit), both are said, each on
# its line: the record refused, then what became of the ones before it.
@test "a bad record, then a failed fsync at close: exit 1, both failures said" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	printf 'a\tb\nc\n' >in
	run -1 --separate-stderr strace -f -o /dev/null -e trace=fsync,fdatasync \
	    -e inject=fsync,fdatasync:error=EIO kds-put -f 2 s <in
	[ "${#stderr_lines[@]}" -eq 2 ]
	[ "${stderr_lines[0]}" = "kds-put: s: record 2: no field 2" ]
	[ "${stderr_lines[1]}" = "kds-put: s: shardId-000000000000/$(seq_of 0 1).seg: fsync: Input/output error" ]
}

# Descriptors: a writer holds four, so a producer opens a shard's writer
# at its first batch, and the tools raise the soft limit to the hard one.
@test "400 shards, 64 descriptors: one key needs one writer; round-robin fits the hard limit" {
	mkstream s -n 400
	run -0 --separate-stderr bash -c 'ulimit -n 64 && seq 10 | kds-put -k a s'
	[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 4096 ] ||
	    skip "hard descriptor limit $(ulimit -Hn) is below 4096"
	run -0 --separate-stderr bash -c 'ulimit -Sn 64 && seq 800 | kds-put s'
	run -0 --separate-stderr bash -c 'ulimit -Sn 64 && kds-get s | wc -l'
	[ "$output" -eq 810 ]
}

# A record that trickles in (as from tail -F) is written, and -p answers
# it, as soon as input pauses: not after a batching delay.
@test "a trickled record is acknowledged at once: median under 50 ms of 10" {
	mkstream s
	run -0 python3 - <<'PY'
import subprocess, time, statistics
p = subprocess.Popen(["kds-put", "-p", "--sync=never", "s"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE)
lat = []
for i in range(10):
    t0 = time.monotonic()
    p.stdin.write(b"r%d\n" % i)
    p.stdin.flush()
    line = p.stdout.readline()
    lat.append((time.monotonic() - t0) * 1000)
    assert line.startswith(b"shardId-000000000000 "), line
    time.sleep(0.1)
p.stdin.close()
assert p.wait() == 0
print("%.1f" % statistics.median(lat))
PY
	echo "# median ack latency $output ms" >&3
	awk -v m="$output" 'BEGIN { exit !(m < 50) }'
}
