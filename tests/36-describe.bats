#!/usr/bin/env bats
# 36-describe: kds-describe, a stream's settings, totals, shards and
# consumers' lag, as text and as JSON with the AWS key names, from
# metadata and indexes only.

load helper

setup() {
	kds_setup
	fixed_clock
}

SPLIT=$TOOLS/kds-split.py

# ten STREAM: r1..r10 in shard 0, record i arriving at T + i seconds.
ten() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		echo "r$i" | put_at $((T + i)) -k k "$1" || return 1
	done
}

# jq_ EXPR: a field of the JSON in $output, through python.
jq_() {
	python3 -c 'import json, sys; d = json.loads(sys.argv[2]); print(eval(sys.argv[1]))' "$1" "$output"
}

@test "an empty stream: settings, no records, a shard table" {
	mkstream s -n 2 -r 12h
	run -0 --separate-stderr kds-describe s
	[ -z "$stderr" ]
	[ "${lines[0]}" = "stream     s" ]
	[ "${lines[1]}" = "retention  12h" ]
	[ "${lines[2]}" = "segments   past 64M or 1h" ]
	[ "${lines[3]}" = "compress   never" ]
	[ "${lines[4]}" = "shards     2 open, 0 closed" ]
	[ "${lines[5]}" = "records    0" ]
	[ "${lines[7]}" = "oldest     -" ]
	[ "${lines[8]}" = "newest     -" ]
	[ "${lines[9]}" = "consumers  0" ]
	[[ ${lines[10]} == "SHARD "*"STATE "*"PARENT "*"RECORDS  BYTES  SEGMENTS" ]]
	read -r id state p a h1 h2 q1 q2 n b g <<<"${lines[11]}"
	[ "$id $state $p $a $h1 $q1 $q2 $n $g" = "shardId-000000000000 open - - 0 - - 0 1" ]
	[ "$h2" = 170141183460469231731687303715884105727 ]
	read -r id state p a h1 h2 rest <<<"${lines[12]}"
	[ "$h1 $h2" = "170141183460469231731687303715884105728 $HMAX" ]
}

@test "records, bytes on disk, oldest and newest arrival, sequence ranges" {
	mkstream s
	ten s
	run -0 --separate-stderr kds-describe s
	[ "${lines[5]}" = "records    10" ]
	bytes=$(find s/shardId-000000000000 -type f -printf '%s\n' | awk '{ t += $1 } END { print t }')
	[ "${lines[6]}" = "bytes      $bytes" ]
	[ "${lines[7]}" = "oldest     2025-11-28T10:00:01.000Z" ]
	[ "${lines[8]}" = "newest     2025-11-28T10:00:10.000Z" ]
	read -r id state p a h1 h2 q1 q2 n b g <<<"${lines[11]}"
	[ "$q1 $q2 $n $b $g" = "$(seq_of 0 1) $(seq_of 0 10) 10 $bytes 1" ]
}

@test "records past the retention are not counted" {
	mkstream s -r 1h
	ten s
	KDS_NOW=$((T + 3605)).5 run -0 --separate-stderr kds-describe s
	[ "${lines[5]}" = "records    5" ]
	[ "${lines[7]}" = "oldest     2025-11-28T10:00:06.000Z" ]
	read -r id state p a h1 h2 q1 q2 n rest <<<"${lines[11]}"
	[ "$q1 $q2 $n" = "$(seq_of 0 6) $(seq_of 0 10) 5" ]
}

@test "closed shards and parents after a split" {
	have_xxhash || skip "no libxxhash for the split stand-in"
	mkstream s
	ten s
	python3 "$SPLIT" s 0 >/dev/null
	run -0 --separate-stderr kds-describe s
	[ "${lines[4]}" = "shards     2 open, 1 closed" ]
	read -r id state p a rest <<<"${lines[11]}"
	[ "$id $state $p $a" = "shardId-000000000000 closed - -" ]
	read -r id state p a rest <<<"${lines[12]}"
	[ "$id $state $p $a" = "shardId-000000000001 open shardId-000000000000 -" ]
}

@test "consumers: records and milliseconds behind in each shard" {
	mkstream s -n 2
	ten s
	run -0 kds-get -c a -n 4 s
	run -0 kds-get -c b s
	run -0 --separate-stderr kds-describe s
	[ "${lines[9]}" = "consumers  2" ]
	# r1..r10 have the key k: all in one shard
	k=$(kds-get --format '%p\n' -n 1 s)
	other=shardId-00000000000$((1 - ${k: -1}))
	printf '%s\n' "${lines[@]}" | grep -q '^CONSUMER  PROCESSES  SHARD  *CHECKPOINT  *RECORDS-BEHIND  MILLIS-BEHIND$'
	printf '%s\n' "${lines[@]}" | grep -E "^a " | grep "$k" | {
		read -r c p sh ck n ms
		[ "$c $p $ck $n $ms" = "a 0 $(seq_of "${k: -1}" 4) 6 6000" ]
	}
	printf '%s\n' "${lines[@]}" | grep -E "^b " | grep "$k" | {
		read -r c p sh ck n ms
		[ "$n $ms" = "0 0" ]
	}
	printf '%s\n' "${lines[@]}" | grep -E "^a " | grep "$other" | {
		read -r c p sh ck n ms
		[ "$ck $n $ms" = "- 0 0" ]
	}
}

@test "a consumer that has not started lags by every retained record" {
	mkstream s
	ten s
	run -0 kds-get -c a -n 0 s
	run -0 --separate-stderr kds-describe s
	printf '%s\n' "${lines[@]}" | grep '^a ' | {
		read -r c p sh ck n ms
		[ "$ck $n $ms" = "- 10 9000" ]
	}
}

# A consumer made this instant has no start yet: it lags by everything
# (above).  One whose start cannot be read or is damaged is said, as
# kds-get says it, not taken for one made this instant.
@test "a consumer's start unreadable or damaged: exit 1, the consumer named" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	ten s
	run -0 kds-get -c a -n 0 s
	run -1 --separate-stderr strace -f -o /dev/null -P "$PWD/s/consumers/a/start" \
	    -e trace=read -e inject=read:error=EIO kds-describe s
	stderr_is "kds-describe: s: consumer a: start: read: Input/output error"
	[ -z "$output" ]
	echo garbage >s/consumers/a/start
	run -1 --separate-stderr kds-describe s
	stderr_is "kds-describe: s: consumer a: start: bad start"
	[ -z "$output" ]
}

@test "a running consumer's processes are counted" {
	mkstream s
	kds-get -F -c live s >/dev/null &
	pid=$!
	for i in $(seq 1 100); do ls s/consumers/live 2>/dev/null | grep -q '^worker\.' && break; sleep 0.05; done
	run -0 --separate-stderr kds-describe -j s
	[ "$(jq_ 'd["StreamDescription"]["Consumers"][0]["Processes"]')" = 1 ]
	kill $pid
	wait $pid
}

@test "-j: one JSON document with the AWS key names" {
	have_xxhash || skip "no libxxhash for the split stand-in"
	mkstream s -r 36h
	ten s
	python3 "$SPLIT" s 0 >/dev/null
	run -0 kds-get -c a -n 3 s
	run -0 --separate-stderr kds-describe -j s
	[ "${#lines[@]}" -eq 1 ]
	[ -z "$stderr" ]
	D='d["StreamDescription"]'
	[ "$(jq_ "$D['StreamName']")" = s ]
	[ "$(jq_ "$D['StreamStatus']")" = ACTIVE ]
	[ "$(jq_ "$D['RetentionPeriodHours']")" = 36 ]
	[ "$(jq_ "$D['OpenShardCount'], $D['ClosedShardCount']")" = "(2, 1)" ]
	[ "$(jq_ "$D['Records']")" = 10 ]
	[ "$(jq_ "$D['StreamCreationTimestamp']")" = "$T.0" ]
	[ "$(jq_ "$D['OldestArrivalTimestamp'], $D['NewestArrivalTimestamp']")" = "($((T + 1)).0, $((T + 10)).0)" ]
	[ "$(jq_ "$D['HasMoreShards']")" = False ]
	S="$D['Shards']"
	[ "$(jq_ "[s['ShardId'] for s in $S]")" = "['shardId-000000000000', 'shardId-000000000001', 'shardId-000000000002']" ]
	[ "$(jq_ "$S[0]['SequenceNumberRange']")" = "{'StartingSequenceNumber': '$(seq_of 0 1)', 'EndingSequenceNumber': '$(seq_of 0 10)'}" ]
	[ "$(jq_ "$S[0]['HashKeyRange']['EndingHashKey']")" = "$HMAX" ]
	[ "$(jq_ "$S[1]['ParentShardId']")" = shardId-000000000000 ]
	[ "$(jq_ "'ParentShardId' in $S[0], 'AdjacentParentShardId' in $S[1]")" = "(False, False)" ]
	[ "$(jq_ "$S[0]['ShardState'], $S[1]['ShardState']")" = "('CLOSED', 'OPEN')" ]
	[ "$(jq_ "$D['ConsumerCount']")" = 1 ]
	C="$D['Consumers'][0]"
	[ "$(jq_ "$C['ConsumerName']")" = a ]
	[ "$(jq_ "$C['Shards'][0]")" = "{'ShardId': 'shardId-000000000000', 'Checkpoint': '$(seq_of 0 3)', 'RecordsBehind': 7, 'MillisBehindLatest': 7000}" ]
	[ "$(jq_ "$C['Shards'][1]['Checkpoint']")" = None ]
}

@test "segment and compression settings, as kds-create was given them" {
	mkstream s --segment-bytes 4K --segment-age 90s --compress-after 7d
	run -0 --separate-stderr kds-describe s
	[ "${lines[2]}" = "segments   past 4K or 90s" ]
	[ "${lines[3]}" = "compress   after 7d" ]
	mkstream t --segment-bytes 5000 --segment-age 2h
	run -0 kds-describe t
	[ "${lines[2]}" = "segments   past 5000 or 2h" ]
	run -0 kds-describe -j s
	D='d["StreamDescription"]'
	[ "$(jq_ "$D['SegmentBytes'], $D['SegmentAgeSeconds'], $D['CompressAfterSeconds']")" = "(4096, 90, 604800)" ]
	run -0 kds-describe -j t
	[ "$(jq_ "'CompressAfterSeconds' in $D")" = False ]
}

@test "-j: a stream name that needs escaping is valid JSON" {
	mkstream 'we"ird\name'
	run -0 --separate-stderr kds-describe -j 'we"ird\name'
	[ "$(jq_ 'd["StreamDescription"]["StreamName"]')" = 'we"ird\name' ]
}

@test "a tail that does not check out: the same answer, from index and walk" {
	mkstream s --segment-bytes 4096
	for i in $(seq 1 5); do lines 200 "b$i-" | put_at $((T + i)) s; done
	run -0 kds-describe -j s
	want=$output
	flip s/shardId-000000000000/tail 30
	run -0 kds-describe -j s
	[ "$output" = "$want" ]
	truncate -s 0 s/shardId-000000000000/tail
	truncate -s 64 s/shardId-000000000000/tail
	run -0 kds-describe -j s
	[ "$output" = "$want" ]
}

@test "fast on a big stream: it reads a small part of the data" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s -n 2 --segment-bytes 1M
	python3 -c 'import sys; sys.stdout.write("".join("%08d%s\n" % (i, "x" * 90) for i in range(60000)))' |
	    put_at $((T + 1)) s
	data=$(du -sb s | cut -f1)
	[ "$data" -gt 6000000 ]
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -o trace -e trace=read,pread64 kds-describe s >/dev/null
	readb=$(awk -F'= ' '/^[0-9]+ +(read|pread64)\(/ && $NF ~ /^[0-9]+$/ { t += $NF } END { print t + 0 }' trace)
	echo "read $readb of $data bytes" >&3
	[ "$readb" -lt $((data / 20)) ]
}

@test "errors: no such stream, not a stream, usage" {
	run -1 --separate-stderr kds-describe nosuch
	stderr_is "kds-describe: nosuch: No such file or directory"
	mkdir plain
	run -1 --separate-stderr kds-describe plain
	stderr_is "kds-describe: plain: not a stream (no meta file)"
	run -2 --separate-stderr kds-describe
	first_line_is "usage: kds-describe [-j] stream"
	run -2 --separate-stderr kds-describe a b
	first_line_is "usage: kds-describe [-j] stream"
	run -2 --separate-stderr kds-describe -x s
	first_line_is "kds-describe: invalid option -- 'x'"
}

@test "a full stdout: exit 1, the stream named, as text, -j and --verify" {
	mkstream s
	ten s
	for o in "" -j --verify; do
		run -1 --separate-stderr bash -c "kds-describe $o s >/dev/full"
		stderr_is "kds-describe: s: stdout: No space left on device" ||
		    { echo "(${o:-text})" >&2; return 1; }
	done
}

# An I/O error reading the meta file, a segment (where TRIM_HORIZON stands)
# or a consumer's checkpoint: exit 1, the file and the call named, nothing
# on stdout, never a description from half the data.
@test "a read error in meta, a segment or a checkpoint: exit 1, file and call named" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	ten s
	kds-get -c a -n 4 s >/dev/null
	seg=$(last_seg s 0)
	for c in "s/meta:read:meta" "$seg:pread64:${seg#s/}" \
	    "s/consumers/a/shardId-000000000000.checkpoint:read:consumer a: shardId-000000000000.checkpoint"; do
		IFS=: read -r f call what <<<"$c"
		run -1 --separate-stderr strace -f -o /dev/null -P "$PWD/$f" -e trace="$call" \
		    -e inject="$call":error=EIO kds-describe s
		stderr_is "kds-describe: s: $what: read: Input/output error" ||
		    { echo "($f)" >&2; return 1; }
		[ -z "$output" ] || { echo "($f): stdout: $output" >&2; return 1; }
	done
}

# Listing a shard's files, or the consumers, failing (getdents: an I/O
# error in the directory): the numbers would be short (the bytes of the
# shard, a consumer left out), so exit 1 with the directory and the call
# named, as kds-get does, rather than exit 0 with a wrong description.
@test "a directory that cannot be listed: exit 1, not a description short of it" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	ten s
	kds-get -c a -n 4 s >/dev/null
	d=$(shard_dir s 0)
	run -1 --separate-stderr strace -f -o /dev/null -P "$PWD/$d" -e trace=getdents64 \
	    -e inject=getdents64:error=EIO:when=1 kds-describe s
	stderr_is "kds-describe: s: ${d#s/}: readdir: Input/output error"
	[ -z "$output" ]
	run -1 --separate-stderr strace -f -o /dev/null -P "$PWD/s/consumers" -e trace=getdents64 \
	    -e inject=getdents64:error=EIO:when=1 kds-describe s
	stderr_is "kds-describe: s: consumers: readdir: Input/output error"
	[ -z "$output" ]
}

@test "--help, --version" {
	run -0 --separate-stderr kds-describe --help
	[ "${lines[0]}" = "usage: kds-describe [-j] stream" ]
	for o in -j --json --help --version; do grep -q -e "$o" <<<"$output"; done
	run -0 --separate-stderr kds-describe --version
	output_is "kds-describe (kds) 0.1.0"
}
