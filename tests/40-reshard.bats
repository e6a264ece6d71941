#!/usr/bin/env bats
# 40-reshard: kds-reshard splits, merges and scales as AWS does, checked
# against an independent model of the rules (tools/kds-lineage.py); breaks
# no rule silently; copies nothing; and producers, readers and other
# reshards running beside it lose nothing.

load helper

LINEAGE=$TOOLS/kds-lineage.py

# lineage and decoded run python3 -S, without site: the two tools need
# only the standard library, this file runs them well over a hundred
# times, and what site imports (any .pth file in site-packages) can cost
# more than the tools themselves.
lineage() {
	python3 -S "$LINEAGE" "$@"
}

# shard_lines STREAM: the shard table of meta.
shard_lines() {
	grep '^shard ' "$1/meta"
}

# snapshot STREAM: every name, size and inode, and the bytes of meta and the
# tails: what a reshard that fails must leave as it found it.
snapshot() {
	(cd "$1" && find . -printf '%p %s %i\n' | sort && cat meta &&
	    find . -name tail -exec cksum {} + | sort)
}

# decoded STREAM: the independent decoder agrees with the stream.
decoded() {
	python3 -S "$DECODE" "$1" >/dev/null
}

# wait_until CMD...: poll CMD for up to 20 s.
wait_until() {
	local i
	for ((i = 0; i < 400; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	echo "wait_until: gave up on: $*" >&2
	return 1
}

# lock_waiters FILE: how many flock(2) calls wait on FILE now.
lock_waiters() {
	local ino
	ino=$(stat -c %i "$1")
	grep -c -E -- "-> FLOCK .*:$ino " /proc/locks || true
}

waiters_are() {
	[ "$(lock_waiters "$1")" -eq "$2" ]
}

# strace_ ARGS...: strace, with LeakSanitizer off (it cannot run traced)
# when the tools are built with sanitizers.
strace_() {
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace "$@"
}

# next_shard VAR STREAM: VAR is the next-shard line of meta, read without
# a process (reshard_as_model and scale_to read it at every step).
NEXT_SHARD_RE=$'(^|\n)next-shard ([0-9]+)\n'
next_shard() {
	[[ $(<"$2/meta") =~ $NEXT_SHARD_RE ]] || { echo "no next-shard in $2/meta" >&2; return 1; }
	printf -v "$1" '%s' "${BASH_REMATCH[2]}"
}

# count_is N STREAM: kds-get returns N records.
count_is() {
	[ "$(kds-get $E "$2" | wc -l)" -eq "$1" ]
}

# ---------------------------------------------------------------- usage

@test "--help: synopsis, each command and option on stdout, exit 0" {
	run -0 --separate-stderr kds-reshard --help
	[ -z "$stderr" ]
	[[ ${lines[0]} == "usage: kds-reshard [-j] stream split shard [hashkey]" ]]
	for w in merge scale split -j --json -h --help -V --version; do
		grep -q -e "$w" <<<"$output" || { echo "no $w in help" >&2; return 1; }
	done
}

@test "--version prints 'kds-reshard (kds) 0.1.0'" {
	run -0 --separate-stderr kds-reshard --version
	output_is "kds-reshard (kds) 0.1.0"
	[ -z "$stderr" ]
}

@test "--help and --version on a full stdout: exit 1 and say so" {
	for o in --help --version; do
		run -1 --separate-stderr bash -c "kds-reshard $o >/dev/full"
		stderr_is "kds-reshard: stdout: No space left on device"
	done
}

@test "unknown option: getopt's line, then usage, exit 2" {
	mkstream s
	snapshot s >before
	run -2 --separate-stderr kds-reshard --bogus s split 0
	first_line_is "kds-reshard: unrecognized option '--bogus'"
	has_usage kds-reshard
	run -2 --separate-stderr kds-reshard -Z s split 0
	first_line_is "kds-reshard: invalid option -- 'Z'"
	snapshot s | same before -
}

@test "missing and extra operands: usage, exit 2, nothing changed" {
	mkstream s
	snapshot s >before
	for args in "" "s" "s split" "s merge" "s merge 0" "s scale" \
	    "s split 0 5 6" "s merge 0 1 2" "s scale 3 4"; do
		run -2 --separate-stderr kds-reshard $args
		[[ ${stderr_lines[0]} == "usage: kds-reshard "* ]]
		[ -z "$output" ]
	done
	run -2 --separate-stderr kds-reshard "" split 0
	has_usage kds-reshard
	snapshot s | same before -
}

@test "unknown command: one line, exit 2" {
	mkstream s
	run -2 --separate-stderr kds-reshard s divide 0
	stderr_is "kds-reshard: unknown command 'divide': split, merge or scale"
	run -2 --separate-stderr kds-reshard s SPLIT 0
	stderr_is "kds-reshard: unknown command 'SPLIT': split, merge or scale"
}

@test "bad shard ids, hash keys and counts: one line, exit 2, nothing changed" {
	mkstream s
	snapshot s >before
	run -2 --separate-stderr kds-reshard s split x
	stderr_is "kds-reshard: bad shard id 'x'"
	run -2 --separate-stderr kds-reshard s split shardId-1
	stderr_is "kds-reshard: bad shard id 'shardId-1'"
	run -2 --separate-stderr kds-reshard s merge 0 1234567890123
	stderr_is "kds-reshard: bad shard id '1234567890123'"
	run -2 --separate-stderr kds-reshard s split 0 12a
	stderr_is "kds-reshard: bad hash key '12a': a decimal from 0 to 2^128-1"
	run -2 --separate-stderr kds-reshard s split 0 340282366920938463463374607431768211456
	stderr_is "kds-reshard: bad hash key '340282366920938463463374607431768211456': a decimal from 0 to 2^128-1"
	run -2 --separate-stderr kds-reshard s split 0 ""
	stderr_is "kds-reshard: bad hash key '': a decimal from 0 to 2^128-1"
	for n in 0 10001 x "" 2.5; do
		run -2 --separate-stderr kds-reshard s scale "$n"
		stderr_is "kds-reshard: bad shard count '$n': 1 to 10000"
	done
	snapshot s | same before -
}

@test "no such stream, or not a stream: one line, exit 1" {
	run -1 --separate-stderr kds-reshard nosuch split 0
	stderr_is "kds-reshard: nosuch: No such file or directory"
	mkdir plain
	run -1 --separate-stderr kds-reshard plain scale 2
	stderr_is "kds-reshard: plain: not a stream (no meta file)"
	[ -z "$(ls -A plain)" ]
}

# ---------------------------------------------------------------- rules

@test "a shard that does not exist: exit 1, nothing changed" {
	mkstream s -n 2
	snapshot s >before
	run -1 --separate-stderr kds-reshard s split 2
	stderr_is "kds-reshard: s: shardId-000000000002: no such shard"
	run -1 --separate-stderr kds-reshard s merge 1 7
	stderr_is "kds-reshard: s: shardId-000000000007: no such shard"
	run -1 --separate-stderr kds-reshard s merge shardId-000000000005 1
	stderr_is "kds-reshard: s: shardId-000000000005: no such shard"
	[ -z "$output" ]
	snapshot s | same before -
}

@test "only open shards can be split or merged" {
	mkstream s -n 2
	kds-reshard s split 0 >/dev/null
	snapshot s >before
	run -1 --separate-stderr kds-reshard s split 0
	stderr_is "kds-reshard: s: shardId-000000000000: shard is closed: only open shards can be split"
	run -1 --separate-stderr kds-reshard s split 0 5
	stderr_is "kds-reshard: s: shardId-000000000000: shard is closed: only open shards can be split"
	run -1 --separate-stderr kds-reshard s merge 0 1
	stderr_is "kds-reshard: s: shardId-000000000000: shard is closed: only open shards can be merged"
	run -1 --separate-stderr kds-reshard s merge 3 0
	stderr_is "kds-reshard: s: shardId-000000000000: shard is closed: only open shards can be merged"
	[ -z "$output" ]
	snapshot s | same before -
}

@test "a split key must be above the starting hash key plus one and below the ending one" {
	mkstream s
	snapshot s >before
	for k in 0 1 "$HMAX"; do
		run -1 --separate-stderr kds-reshard s split 0 "$k"
		stderr_is "kds-reshard: s: shardId-000000000000: new starting hash key $k is not both greater than the shard's starting hash key 0 plus one and less than its ending hash key $HMAX"
	done
	snapshot s | same before -
	# the closest keys that are allowed, on either side
	run -0 --separate-stderr kds-reshard s split 0 2
	output_is "$(printf 'shardId-000000000001\nshardId-000000000002')"
	run -0 --separate-stderr kds-reshard s split 2 340282366920938463463374607431768211454
	output_is "$(printf 'shardId-000000000003\nshardId-000000000004')"
	same <(shard_lines s) <(lineage model 1 split:0:2 split:2:340282366920938463463374607431768211454)
	# a shard of two keys has no key that is allowed
	run -1 --separate-stderr kds-reshard s split 1
	stderr_is "kds-reshard: s: shardId-000000000001: new starting hash key 1 is not both greater than the shard's starting hash key 0 plus one and less than its ending hash key 1"
	lineage check s
}

@test "the middle of a range of three keys is no split key either" {
	mkstream s -n 2
	kds-reshard s split 1 340282366920938463463374607431768211453 >/dev/null
	# shard 3 is now [2^128-3, 2^128-1]: three keys, middle 2^128-2
	run -1 --separate-stderr kds-reshard s split 3
	stderr_is "kds-reshard: s: shardId-000000000003: new starting hash key 340282366920938463463374607431768211454 is not both greater than the shard's starting hash key 340282366920938463463374607431768211453 plus one and less than its ending hash key $HMAX"
	same <(shard_lines s) <(lineage model 2 split:1:340282366920938463463374607431768211453)
}

@test "a merge takes two adjacent open shards, the lower range first" {
	mkstream s -n 3
	snapshot s >before
	a=113427455640312821154458202477256070484
	c=226854911280625642308916404954512140969
	d=226854911280625642308916404954512140970
	run -1 --separate-stderr kds-reshard s merge 0 2
	stderr_is "kds-reshard: s: shardId-000000000000 and shardId-000000000002 are not adjacent: shardId-000000000000 ends at $a and shardId-000000000002 starts at $d; the second must start right after the first"
	run -1 --separate-stderr kds-reshard s merge 1 0
	stderr_is "kds-reshard: s: shardId-000000000001 and shardId-000000000000 are not adjacent: shardId-000000000001 ends at $c and shardId-000000000000 starts at 0; the second must start right after the first"
	run -1 --separate-stderr kds-reshard s merge 2 0
	stderr_is "kds-reshard: s: shardId-000000000002 and shardId-000000000000 are not adjacent: shardId-000000000002 ends at $HMAX and shardId-000000000000 starts at 0; the second must start right after the first"
	run -1 --separate-stderr kds-reshard s merge 1 1
	stderr_is "kds-reshard: s: shardId-000000000001: a shard cannot be merged with itself"
	snapshot s | same before -
	run -0 --separate-stderr kds-reshard s merge 0 shardId-000000000001
	output_is shardId-000000000003
	same <(shard_lines s) <(lineage model 3 merge:0:1)
}

@test "a split that would make more than 10000 open shards is refused" {
	have_xxhash || skip "no libxxhash for python"
	# A forged stream of 10000 open shards: the rule is checked before any
	# shard directory is touched, so none is needed.
	mkdir s && : >s/lock
	python3 - <<'EOF'
import ctypes
f = ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed
f.restype = ctypes.c_uint64
f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
n = 10000
h = 2 ** 128 // n
body = ["kds-stream 1\ncreated 1764324000000\nretention 86400\n",
        "segment-bytes 67108864\nsegment-age 3600\nnext-shard %d\n" % n]
for i in range(n):
    e = 2 ** 128 - 1 if i == n - 1 else (i + 1) * h - 1
    body.append("shard shardId-%012d open - - %d %d %d%020d -\n" % (i, i * h, e, i + 1, 1))
b = "".join(body).encode()
open("s/meta", "wb").write(b + b"checksum %016x\n" % f(b, len(b), 0))
EOF
	snapshot s >before
	run -1 --separate-stderr kds-reshard s split 0
	stderr_is "kds-reshard: s: shardId-000000000000: a split would make more than 10000 open shards"
	# and scaling to what it has is nothing to do
	run -0 --separate-stderr kds-reshard s scale 10000
	[ -z "$output" ]
	snapshot s | same before -
}

# ---------------------------------------------------------------- ranges

# reshard_as_model N OP...: a new N-shard stream, the OPs done by
# kds-reshard, each printing its children; meta must equal the model's.
reshard_as_model() {
	local n=$1 op f want next
	shift
	rm -rf m
	mkstream m -n "$n"
	for op in "$@"; do
		IFS=: read -r -a f <<<"$op"
		next_shard next m
		if [ "${f[0]}" = split ]; then
			printf -v want 'shardId-%012d\nshardId-%012d' "$next" $((next + 1))
			run -0 --separate-stderr kds-reshard m split "${f[@]:1}"
		else
			printf -v want 'shardId-%012d' "$next"
			run -0 --separate-stderr kds-reshard m merge "${f[@]:1}"
		fi
		output_is "$want"
		[ -z "$stderr" ]
	done
	same <(shard_lines m) <(lineage model "$n" "$@")
	lineage check m
	decoded m
}

@test "split sequences give the hash key ranges AWS gives" {
	reshard_as_model 1 split:0 split:1 split:2 split:3 split:6
	reshard_as_model 1 split:0:12345678901234567890 split:2:300000000000000000000000000000000000000 split:1
	reshard_as_model 3 split:1 split:0 split:2 split:4:200000000000000000000000000000000000000
	reshard_as_model 7 split:6 split:3 split:8
}

@test "merge sequences give the hash key ranges AWS gives" {
	reshard_as_model 4 merge:0:1 merge:4:2 merge:5:3
	reshard_as_model 4 merge:2:3 merge:0:1 merge:5:4
	reshard_as_model 5 merge:1:2 merge:0:5 merge:3:4 merge:6:7
}

@test "split and merge sequences mixed give the ranges AWS gives" {
	reshard_as_model 2 split:0 merge:2:3 split:4:7 merge:5:6 merge:7:1
	reshard_as_model 3 split:1 merge:0:3 merge:4:2 split:6
}

# scale_to STREAM N: scale, check what it printed and what it left.
scale_to() {
	local s=$1 n=$2 before
	next_shard before "$s"
	run -0 --separate-stderr kds-reshard "$s" scale "$n"
	[ -z "$stderr" ]
	# it printed the shards it made, all of them, in order
	next_shard after "$s"
	if ((after > before)); then
		output_is "$(seq -f 'shardId-%012.0f' "$before" $((after - 1)))"
	else
		[ -z "$output" ]
	fi
	same <(lineage open "$s") <(lineage ranges "$n")
	lineage check "$s"
	decoded "$s"
}

@test "scale ends with the ranges of kds-create -n N, through splits and merges" {
	mkstream s
	scale_to s 8
	scale_to s 3
	scale_to s 4
	scale_to s 6
	scale_to s 5
	scale_to s 2
	scale_to s 7
	scale_to s 1
	scale_to s 9
}

@test "scale does it in rounds: 1 to 8 makes 14 shards, 3 generations deep" {
	mkstream s
	scale_to s 8
	next_shard next s
	[ "$next" -eq 15 ]
	[ "$(lineage depth s)" -eq 3 ]
	# 8 to 1: 7 merges, again 3 rounds
	scale_to s 1
	next_shard next s
	[ "$next" -eq 22 ]
	[ "$(lineage depth s)" -eq 6 ]
}

@test "scale of many shards with few file descriptors takes more transactions" {
	mkstream s
	# a round of 32 splits holds 32 tail locks; 40 descriptors allow 4
	run -0 --separate-stderr bash -c 'ulimit -n 40 && exec kds-reshard s scale 64'
	[ "${#lines[@]}" -eq 126 ]
	same <(lineage open s) <(lineage ranges 64)
	lineage check s
	run -0 --separate-stderr bash -c 'ulimit -n 40 && exec kds-reshard s scale 5'
	same <(lineage open s) <(lineage ranges 5)
	lineage check s
}

@test "scale to the shards the stream has already does nothing" {
	mkstream s -n 4
	snapshot s >before
	run -0 --separate-stderr kds-reshard s scale 4
	[ -z "$output" ]
	[ -z "$stderr" ]
	snapshot s | same before -
}

@test "scale evens out ranges that manual splits left uneven" {
	mkstream s -n 2
	kds-reshard s split 0 5 >/dev/null
	kds-reshard s split 1 >/dev/null
	[ "$(grep -c ' open ' s/meta)" -eq 4 ]
	scale_to s 4
	scale_to s 2
}

# ---------------------------------------------------------------- output

@test "-j prints each shard made as ListShards describes it, one a line" {
	mkstream s -n 2
	run -0 --separate-stderr kds-reshard -j s split 0
	python3 - "$output" <<'EOF'
import json, sys
got = [json.loads(l) for l in sys.argv[1].split("\n")]
h = 2 ** 127
assert got == [
    {"ShardId": "shardId-000000000002", "ParentShardId": "shardId-000000000000",
     "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(h // 2 - 1)},
     "SequenceNumberRange": {"StartingSequenceNumber": "300000000000000000001"}},
    {"ShardId": "shardId-000000000003", "ParentShardId": "shardId-000000000000",
     "HashKeyRange": {"StartingHashKey": str(h // 2), "EndingHashKey": str(h - 1)},
     "SequenceNumberRange": {"StartingSequenceNumber": "400000000000000000001"}},
], got
assert list(got[0]) == ["ShardId", "ParentShardId", "HashKeyRange",
                        "SequenceNumberRange"]
EOF
	run -0 --separate-stderr kds-reshard s merge 3 1 --json
	python3 - "$output" <<'EOF'
import json, sys
got = json.loads(sys.argv[1])
assert list(got) == ["ShardId", "ParentShardId", "AdjacentParentShardId",
                     "HashKeyRange", "SequenceNumberRange"], got
assert got["ShardId"] == "shardId-000000000004"
assert got["ParentShardId"] == "shardId-000000000003"
assert got["AdjacentParentShardId"] == "shardId-000000000001"
assert got["HashKeyRange"] == {"StartingHashKey": str(2 ** 126),
                               "EndingHashKey": str(2 ** 128 - 1)}
EOF
	run -0 --separate-stderr kds-reshard -j s scale 3
	[ "${#lines[@]}" -ge 2 ]
	for l in "${lines[@]}"; do
		python3 -c 'import json, sys; json.loads(sys.argv[1])' "$l"
	done
}

# Each shard is printed as it is made, and stdout flushed then: a full
# stdout is said at once, with the stream, though the reshard is done.
@test "a full stdout when the shards made are printed: exit 1, the stream named" {
	mkstream s -n 2
	run -1 --separate-stderr bash -c 'kds-reshard s split 0 >/dev/full'
	stderr_is "kds-reshard: s: stdout: No space left on device"
	[ -d s/shardId-000000000002 ]
	run -1 --separate-stderr bash -c 'kds-reshard -j s scale 3 >/dev/full'
	stderr_is "kds-reshard: s: stdout: No space left on device"
}

# ---------------------------------------------------------------- sequence

@test "parents close at their last sequence number; children start above it" {
	mkstream s -n 2
	lines 30 r | kds-put -p s >acks
	last0=$(awk '$1 == "shardId-000000000000" { s = $2 } END { print s }' acks)
	last1=$(awk '$1 == "shardId-000000000001" { s = $2 } END { print s }' acks)
	[ "$last0" = "$(seq_of 0 15)" ]
	[ "$last1" = "$(seq_of 1 15)" ]
	kds-reshard s split 0 >/dev/null
	grep -q "^shard shardId-000000000000 closed - - .* $last0\$" s/meta
	kds-reshard s merge 3 1 >/dev/null
	grep -q "^shard shardId-000000000001 closed - - .* $last1\$" s/meta
	# a shard closed before it held any record ends at counter 0
	grep -q "^shard shardId-000000000003 closed shardId-000000000000 - .* 400000000000000000000\$" s/meta
	lineage check s
	decoded s
	# what comes next is numbered above every parent
	lines 10 n | kds-put -p s >acks2
	awk '{ print $1 }' acks2 | sort -u >shards
	printf 'shardId-000000000002\nshardId-000000000004\n' | same shards -
	while read -r _ seq; do
		[[ $seq > $last1 ]]
		((${#seq} >= ${#last1}))
	done <acks2
	decoded s
}

@test "records put after a split go to the child that owns their hash key" {
	mkstream s
	kds-reshard s split 0 >/dev/null
	kds-reshard s split 2 200000000000000000000000000000000000000 >/dev/null
	lines 200 key | kds-put -f 1 s
	kds-get $E --format '%p %h\n' s >got
	[ "$(wc -l <got)" -eq 200 ]
	python3 - <<'EOF'
ranges = {}
for l in open("s/meta"):
    f = l.split()
    if f[0] == "shard":
        ranges[f[1]] = (f[2], int(f[5]), int(f[6]))
seen = set()
for l in open("got"):
    sid, h = l.split()
    state, lo, hi = ranges[sid]
    assert state == "open" and lo <= int(h) <= hi, l
    seen.add(sid)
assert seen == {"shardId-000000000001", "shardId-000000000003",
                "shardId-000000000004"}, seen
EOF
}

@test "a split copies nothing: the parent's files stay, its children start empty" {
	mkstream s --segment-bytes 64K
	head -c 300000 /dev/urandom | base64 -w 100 | kds-put -k k s
	(cd s/shardId-000000000000 && find . -type f ! -name tail -printf '%p %s %i\n' | sort &&
	    cksum ./*.seg) >before
	[ "$(ls s/shardId-000000000000/*.seg | wc -l)" -gt 3 ]
	kds-reshard s split 0 >/dev/null
	(cd s/shardId-000000000000 && find . -type f ! -name tail -printf '%p %s %i\n' | sort &&
	    cksum ./*.seg) | same before -
	for c in 1 2; do
		d=$(shard_dir s $c)
		[ "$(ls "$d")" = "$(printf '%s\ntail' "$(seq_of $c 1).seg")" ]
		[ "$(filesize "$d/$(seq_of $c 1).seg")" -eq 48 ]
	done
	decoded s
}

# ---------------------------------------------------------------- producers

# start_put ARGS...: kds-put ARGS reading the fifo f, acks to acks; fd 7
# writes to it (bats owns fd 3).  stop_put ends it and checks its exit.
start_put() {
	mkfifo f
	kds-put -p "$@" <f >acks 2>put.err &
	PUT=$!
	exec 7>f
}
stop_put() {
	exec 7>&-
	wait "$PUT"
}

@test "a running kds-put sends its next records to the children" {
	mkstream s
	start_put -k k s
	echo before >&7
	wait_until count_is 1 s
	run -0 --separate-stderr kds-reshard s split 0
	echo after1 >&7
	echo after2 >&7
	stop_put
	[ ! -s put.err ]
	child=$(python3 -c 'import hashlib; print(1 if int(hashlib.md5(b"k").hexdigest(), 16) < 2**127 else 2)')
	printf '%s\n' "shardId-000000000000 $(seq_of 0 1)" \
	    "shardId-00000000000$child $(seq_of "$child" 1)" \
	    "shardId-00000000000$child $(seq_of "$child" 2)" | same acks -
	grep -q "^shard shardId-000000000000 closed - - .* $(seq_of 0 1)\$" s/meta
	run -0 kds-get $E --format '%p %s\n' s
	output_is "$(printf '%s\n' "shardId-000000000000 before" \
	    "shardId-00000000000$child after1" "shardId-00000000000$child after2")"
	decoded s
}

@test "a running kds-put follows reshard after reshard, whatever inode meta gets" {
	mkstream s
	start_put -f 1 s
	echo r1 >&7
	wait_until count_is 1 s
	# meta is replaced twice while kds-put holds the first one; the new
	# one may even have its inode (file systems reuse them), which is why
	# a reshard flags the tails it closes
	kds-reshard s split 0 >/dev/null
	kds-reshard s split 1 >/dev/null
	for i in 2 3 4 5 6 7 8 9; do echo "r$i" >&7; done
	stop_put
	[ ! -s put.err ]
	[ "$(head -n 1 acks)" = "shardId-000000000000 $(seq_of 0 1)" ]
	# each later record went to the open shard that owns its key
	kds-get $E --format '%p %h %s\n' s >got
	python3 - <<'PY'
ranges = {}
for l in open("s/meta"):
    f = l.split()
    if f[0] == "shard":
        ranges[f[1]] = (f[2], int(f[5]), int(f[6]))
got = [l.split() for l in open("got")]
# r2..r9 went in one batch or several: merged by arrival, then shard
assert got[0][0] == "shardId-000000000000" and got[0][2] == "r1", got
assert sorted(int(g[2][1:]) for g in got) == list(range(1, 10)), got
for sid, h, _ in got[1:]:
    state, lo, hi = ranges[sid]
    assert state == "open" and lo <= int(h) <= hi, (sid, h)
PY
	grep -q "^shard shardId-000000000000 closed .* $(seq_of 0 1)\$" s/meta
	grep -q "^shard shardId-000000000001 closed .* $(seq_of 1 0)\$" s/meta
	lineage check s
	decoded s
}

# tail_flags TAIL [VALUE]: print the flags word of a tail, or set it and
# seal the tail again, as an interrupted reshard leaves it.
tail_flags() {
	python3 - "$@" <<'EOF'
import ctypes, struct, sys
f = ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed
f.restype = ctypes.c_uint64
f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
raw = bytearray(open(sys.argv[1], "rb").read())
if len(sys.argv) == 2:
    print(struct.unpack_from("<Q", raw, 48)[0])
    sys.exit(0)
struct.pack_into("<Q", raw, 48, int(sys.argv[2]))
struct.pack_into("<Q", raw, 56, f(bytes(raw[:56]), 56, 0))
open(sys.argv[1], "r+b").write(raw)
EOF
}

@test "a reshard flags the tails it closes; a flag alone only makes a writer read meta" {
	have_xxhash || skip "no libxxhash for python"
	mkstream s -n 2
	echo a | kds-put -E 0 s
	[ "$(tail_flags s/shardId-000000000000/tail)" -eq 0 ]
	kds-reshard s merge 0 1 >/dev/null
	[ "$(tail_flags s/shardId-000000000000/tail)" -eq 1 ]
	[ "$(tail_flags s/shardId-000000000001/tail)" -eq 1 ]
	[ "$(tail_flags s/shardId-000000000002/tail)" -eq 0 ]
	# a reshard that died after flagging shard 2 but before meta: shard 2
	# is still open and takes records, and the flag goes
	tail_flags s/shardId-000000000002/tail 1
	printf 'b\nc\n' | kds-put -k k s
	[ "$(tail_flags s/shardId-000000000002/tail)" -eq 0 ]
	run -0 kds-get $E --format '%p %s\n' s
	output_is "$(printf '%s\n' "shardId-000000000000 a" "shardId-000000000002 b" "shardId-000000000002 c")"
	decoded s
}

@test "a reshard waits for a writer that holds the shard's lock" {
	command -v flock >/dev/null || skip "no flock(1)"
	mkstream s
	echo one | kds-put -k k s
	exec 4<"$(shard_dir s 0)/tail"
	flock -x 4
	kds-reshard s split 0 >out 2>err &
	pid=$!
	wait_until waiters_are "$(shard_dir s 0)/tail" 1
	# it holds STREAM/lock while it waits, and has changed nothing yet
	grep -q '^shard shardId-000000000000 open' s/meta
	flock -u 4
	wait "$pid"
	exec 4<&-
	printf 'shardId-000000000001\nshardId-000000000002\n' | same out -
	grep -q "^shard shardId-000000000000 closed - - .* $(seq_of 0 1)\$" s/meta
}

# ---------------------------------------------------------------- readers

@test "kds-get reads a parent to its end before its children, even after the clock went back" {
	fixed_clock
	mkstream s
	for i in 1 2 3; do echo "p$i" | put_at $((T + 100)) -k k s; done
	KDS_NOW=$((T + 50)) kds-reshard s split 0 >/dev/null
	# the children's records are put at an earlier clock than the parent's
	for i in 1 2 3; do lines 4 "c$i-" | put_at $((T + 60)) -f 1 s; done
	run -0 --separate-stderr kds-get $E --format '%p %T %s\n' s
	[ "${#lines[@]}" -eq 15 ]
	for i in 0 1 2; do
		[[ ${lines[i]} == "shardId-000000000000 $((T + 100))000 p$((i + 1))" ]]
	done
	for ((i = 3; i < 15; i++)); do
		[[ ${lines[i]} == "shardId-00000000000"[12]" $((T + 100))000 c"* ]]
	done
	# and the children's first segments say when they were made
	for c in 1 2; do
		python3 - "$(shard_dir s $c)/$(seq_of $c 1).seg" $(((T + 100) * 1000)) <<'EOF'
import struct, sys
created = struct.unpack_from("<q", open(sys.argv[1], "rb").read(), 24)[0]
assert created == int(sys.argv[2]), created
EOF
	done
}

@test "kds-get reads both parents of a merge before their child" {
	fixed_clock
	mkstream s -n 2
	echo a1 | put_at $((T + 10)) -E 0 s
	echo b1 | put_at $((T + 20)) -E "$HMAX" s
	echo a2 | put_at $((T + 30)) -E 0 s
	KDS_NOW=$((T + 5)) kds-reshard s merge 0 1 >/dev/null
	echo c1 | put_at $((T + 15)) -E 0 s
	echo c2 | put_at $((T + 40)) -E "$HMAX" s
	run -0 --separate-stderr kds-get $E --format '%p %T %s\n' s
	output_is "$(printf '%s\n' "shardId-000000000000 $((T + 10))000 a1" \
	    "shardId-000000000001 $((T + 20))000 b1" \
	    "shardId-000000000000 $((T + 30))000 a2" \
	    "shardId-000000000002 $((T + 30))000 c1" \
	    "shardId-000000000002 $((T + 40))000 c2")"
}

@test "closed shards stay readable until their records expire" {
	fixed_clock
	mkstream s -r 1h
	lines 5 old | put_at $((T + 10)) -k k s
	KDS_NOW=$((T + 20)) kds-reshard s split 0 >/dev/null
	lines 5 new | put_at $((T + 1800)) -k k s
	KDS_NOW=$((T + 1900)) run -0 kds-get $E -s 0 s
	output_is "$(lines 5 old)"
	KDS_NOW=$((T + 1900)) run -0 kds-get $E s
	output_is "$(lines 5 old; lines 5 new)"
	KDS_NOW=$((T + 1900)) run -0 kds-get $E -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 3)" s
	output_is "$(printf 'old3\nold4\nold5')"
	# an hour after they arrived, the parent's records are gone; the
	# children's are not
	KDS_NOW=$((T + 3700)) run -0 kds-get $E s
	output_is "$(lines 5 new)"
	KDS_NOW=$((T + 3700)) run -0 kds-get $E -s 0 s
	[ -z "$output" ]
}

# ---------------------------------------------------------------- races

@test "two kds-reshard runs racing on one stream: one splits, the other finds it closed" {
	command -v flock >/dev/null || skip "no flock(1)"
	mkstream s
	exec 4<s/lock
	flock -x 4
	kds-reshard s split 0 >out1 2>err1 &
	p1=$!
	kds-reshard s split 0 >out2 2>err2 &
	p2=$!
	wait_until waiters_are s/lock 2
	flock -u 4
	exec 4<&-
	rc1=0 rc2=0
	wait "$p1" || rc1=$?
	wait "$p2" || rc2=$?
	[ $((rc1 + rc2)) -eq 1 ]
	cat out1 out2 >out
	printf 'shardId-000000000001\nshardId-000000000002\n' | same out -
	cat err1 err2 >err
	echo "kds-reshard: s: shardId-000000000000: shard is closed: only open shards can be split" | same err -
	same <(shard_lines s) <(lineage model 1 split:0)
}

@test "two scales racing on one stream both finish, one after the other" {
	command -v flock >/dev/null || skip "no flock(1)"
	mkstream s -n 2
	exec 4<s/lock
	flock -x 4
	kds-reshard s scale 5 >out1 2>err1 &
	p1=$!
	kds-reshard s scale 3 >out2 2>err2 &
	p2=$!
	wait_until waiters_are s/lock 2
	flock -u 4
	exec 4<&-
	wait "$p1"
	wait "$p2"
	[ ! -s err1 ]
	[ ! -s err2 ]
	# the two printed different shards, all the shards made between them
	cat out1 out2 | sort >out
	next_shard next s
	seq -f 'shardId-%012.0f' 2 $((next - 1)) | same out -
	n=$(grep -c ' open ' s/meta)
	[ "$n" -eq 5 ] || [ "$n" -eq 3 ]
	same <(lineage open s) <(lineage ranges "$n")
	lineage check s
	decoded s
}

# ---------------------------------------------------------------- failures

@test "children left by an interrupted reshard are removed by the next one" {
	mkstream s
	echo r | kds-put -k k s
	# what a reshard killed before it replaced meta leaves
	mkdir s/shardId-000000000001 s/shardId-000000000002
	echo junk >s/shardId-000000000001/100.seg
	: >s/shardId-000000000002/tail
	run -0 kds-get $E s
	output_is r
	decoded s
	run -0 --separate-stderr kds-reshard s split 0
	output_is "$(printf 'shardId-000000000001\nshardId-000000000002')"
	[ "$(ls s/shardId-000000000001)" = "$(printf '%s\ntail' "$(seq_of 1 1).seg")" ]
	same <(shard_lines s | cut -d' ' -f1-8) <(lineage model 1 split:0 | cut -d' ' -f1-8)
	decoded s
}

@test "a stream without its lock file, or with a leftover that will not go: exit 1" {
	mkstream s
	mkdir -p s/shardId-000000000001/sub
	snapshot s >before
	run -1 --separate-stderr kds-reshard s split 0
	stderr_is "kds-reshard: s: shardId-000000000001/sub: unlink: Is a directory"
	snapshot s | same before -
	rmdir s/shardId-000000000001/sub
	rm s/lock
	run -1 --separate-stderr kds-reshard s scale 2
	stderr_is "kds-reshard: s: lock: No such file or directory"
	[ ! -e s/shardId-000000000002 ]
	grep -q '^next-shard 1$' s/meta
}

@test "a failure while resharding changes nothing and says where" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	lines 10 r | kds-put -k k s
	snapshot s >before
	run -1 --separate-stderr strace_ -f -o /dev/null -e trace=mkdir,mkdirat \
	    -e inject=mkdir,mkdirat:error=ENOSPC:when=2 kds-reshard s split 0
	stderr_is "kds-reshard: s: shardId-000000000002: No space left on device"
	[ -z "$output" ]
	snapshot s | same before -
	run -1 --separate-stderr strace_ -f -o /dev/null -P "$PWD/s/meta.tmp" -e trace=write \
	    -e inject=write:error=ENOSPC kds-reshard s split 0
	stderr_is "kds-reshard: s: meta.tmp: write: No space left on device"
	snapshot s | same before -
	run -1 --separate-stderr strace_ -f -o /dev/null -e trace=fdatasync \
	    -e inject=fdatasync:error=EIO kds-reshard s split 0
	stderr_is "kds-reshard: s: shardId-000000000000/$(seq_of 0 1).seg: fsync: Input/output error"
	snapshot s | same before -
	# the parent is as it was: open, and written to
	echo r11 | kds-put -k k s
	count_is 11 s
	decoded s
}

# CALLS: the calls at which a reshard is killed or fails, one kind at a
# time (strace counts each kind apart: in one set, when=N would only ever
# hit the first kind to reach its Nth call).
CALLS=mkdir,mkdirat,write,pwrite64,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat

# calls_of TRACE: each call in TRACE (strace -f -o) as KIND:N, its Nth of
# that kind, in the order they came.
calls_of() {
	awk '$2 ~ /^[a-z0-9_]+\(/ { c = $2; sub(/\(.*/, "", c); print c ":" ++n[c] }' "$1"
}

@test "a reshard killed at any step leaves a valid stream; running it again finishes it" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	mkstream base -n 2
	lines 20 r | kds-put base
	# leftovers of an earlier interrupted run, for the cleanup
	mkdir base/shardId-000000000002 && : >base/shardId-000000000002/tail
	lineage model 2 merge:0:1 | cut -d' ' -f1-8 >merged
	# every call a whole merge makes is a point to kill it at; each run
	# of the suite kills at every STEP-th of them, in the order they come
	cp -a base s
	strace_ -f -o trace -e trace="$CALLS" kds-reshard s merge 0 1 >/dev/null 2>&1
	same <(shard_lines s | cut -d' ' -f1-8) merged
	points=($(calls_of trace))
	# the merge makes 20 of these calls: fewer than 15 means the trace or
	# the tool lost some
	[ "${#points[@]}" -ge 15 ]
	kills=0
	for p in $(stepped "${points[@]}"); do
		sc=${p%:*} n=${p#*:}
		rm -rf s && cp -a base s
		rc=0
		strace_ -f -o /dev/null -e trace="$sc" -e inject="$sc":signal=KILL:when=$n \
		    kds-reshard s merge 0 1 >/dev/null 2>&1 || rc=$?
		[ "$rc" -eq 137 ] || { echo "$sc $n: exit $rc" >&2; return 1; }
		kills=$((kills + 1))
		count_is 20 s
		lineage check s
		decoded s
		# again: it merges, or finds the merge done
		run kds-reshard s merge 0 1
		if [ "$status" -ne 0 ]; then
			[ "$status" -eq 1 ]
			[[ $output == *"shard is closed: only open shards can be merged" ]]
		fi
		same <(shard_lines s | cut -d' ' -f1-8) merged
		lines 5 n | kds-put s
		count_is 25 s
		# kds-get read it all; the decoder checks it after every fourth
		# kill and the last (and after each kill, above)
		((kills % 4)) || decoded s
	done
	((kills % 4 == 0)) || decoded s
	echo "# $kills kills of ${#points[@]} points" >&3
	[ "$kills" -ge 1 ]
}
