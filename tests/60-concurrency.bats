#!/usr/bin/env bats
# 60-concurrency: writers share shards through the tail lock only; readers
# take no lock and must never see half a record.

load helper

N=50000		# records per producer
P=8		# producers

# check_read FILE: lines "SHARD SEQ pJ I" (kds-get --format '%p %o %s\n');
# every line well formed; within a shard the sequence numbers increase and
# each producer's records come in its input order.  Prints the line count.
check_read() {
	awk '
	!/^shardId-00000000000[0-3] [1-4]0000000000000[0-9]+ p[0-7] [0-9]+$/ || length($2) != 21 {
		print "bad line " NR ": " $0 > "/dev/stderr"; bad = 1; exit 1
	}
	{
		k = $1 " " $3
		if ((k in last) && $4 + 0 <= last[k]) {
			print "producer order broken at " NR ": " $0 > "/dev/stderr"; bad = 1; exit 1
		}
		last[k] = $4 + 0
		if (($1 in seq) && ($2 "") <= seq[$1]) {
			print "sequence order broken at " NR ": " $0 > "/dev/stderr"; bad = 1; exit 1
		}
		seq[$1] = $2 ""
		n++
	}
	END { if (!bad) print n + 0 }' "$1"
}

# trickle FILE [UNTIL]: FILE's lines, 1,000 at a time, 60 ms apart; then,
# with UNTIL, input stays open until the file UNTIL exists (60 s at most),
# so that a writer outlives what the test wants to overlap it.
trickle() {
	python3 -c '
import os, sys, time
lines = open(sys.argv[1], "rb").readlines()
for i in range(0, len(lines), 1000):
    sys.stdout.buffer.write(b"".join(lines[i:i + 1000]))
    sys.stdout.flush()
    time.sleep(0.06)
end = time.time() + 60
while len(sys.argv) > 2 and not os.path.exists(sys.argv[2]) and time.time() < end:
    time.sleep(0.01)
' "$@"
}

any_alive() {
	local p
	for p; do
		kill -0 "$p" 2>/dev/null && return 0
	done
	return 1
}

@test "8 producers x 50,000 records into 4 shards: nothing lost, nothing doubled" {
	mkstream s -n 4
	for ((j = 0; j < P; j++)); do
		seq -f "p$j %.0f" 1 $N >in$j
	done
	pids=()
	for ((j = 0; j < P; j++)); do
		kds-put -p s <in$j >ack.$j 2>err$j &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do
		wait "$pid"
	done
	for ((j = 0; j < P; j++)); do
		[ ! -s err$j ]
	done
	# each producer was told of each of its records
	wc -l ack.* | awk -v n=$N '$2 != "total" && $1 != n { print; bad = 1 } END { exit bad }'
	kds-get $E --format '%p %o %s\n' s >out
	run -0 check_read out
	[ "$output" -eq $((P * N)) ]
	# (sorts of 400,000 lines: bytewise, the quickest, both sides alike)
	[ "$(cut -d' ' -f3,4 out | LC_ALL=C sort -u | wc -l)" -eq $((P * N)) ]
	# the sequence numbers of each shard are 1..n, no gap
	awk '{ c[$1]++; if (substr($2, 14) + 0 != c[$1]) { print "gap at " NR; exit 1 } }' out
	# what each producer was told is what is there; and so every
	# acknowledgement is a different record, as no sequence number is
	# stored twice (check_read: they increase)
	cat ack.* | LC_ALL=C sort >acks
	cut -d' ' -f1,2 out | LC_ALL=C sort >stored
	cmp acks stored
	# and the independent decoder agrees, checksums and all
	if have_xxhash; then
		n=$(decoded_count s)
		[ "$n" -eq $((P * N)) ]
	fi
}

@test "a reader running during 8 writers never sees a bad record" {
	mkstream s -n 4 --segment-bytes 256K
	n=20000
	for ((j = 0; j < P; j++)); do
		seq -f "p$j %.0f" 1 $n >in$j
	done
	# input in pauses (1,000 lines, then 60 ms: each a batch of its own),
	# held open until 5 reads are done (slow ones, under ASan), keeps the
	# writers busy long enough for many reads to overlap them
	pids=()
	for ((j = 0; j < P; j++)); do
		kds-put s < <(trickle in$j enough) 2>err$j &
		pids+=($!)
	done
	reads=0
	while any_alive "${pids[@]}" || [ "$reads" -eq 0 ]; do
		[ "$reads" -lt 5 ] || touch enough
		kds-get $E --format '%p %o %s\n' s >out 2>rerr || {
			echo "reader failed during writes: $(cat rerr)" >&2
			return 1
		}
		[ ! -s rerr ]
		check_read out >/dev/null
		reads=$((reads + 1))
	done
	for pid in "${pids[@]}"; do
		wait "$pid"
	done
	kds-get $E --format '%p %o %s\n' s >out
	run -0 check_read out
	[ "$output" -eq $((P * n)) ]
	echo "# $reads reads during the writes" >&3
	[ "$reads" -ge 5 ]
}

@test "a following reader sees every record of concurrent writers exactly once" {
	mkstream s -n 4 --segment-bytes 64K
	n=5000
	timeout 60 kds-get -F -n $((4 * n)) --format '%p %o %s\n' s >out 2>rerr &
	reader=$!
	pids=()
	for ((j = 0; j < 4; j++)); do
		seq -f "p$j %.0f" 1 $n | kds-put s &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do
		wait "$pid"
	done
	wait "$reader"
	[ ! -s rerr ]
	run -0 check_read out
	[ "$output" -eq $((4 * n)) ]
	[ "$(sort -u out | wc -l)" -eq $((4 * n)) ]
}

@test "8 kds-create of one path at once: exactly one wins" {
	pids=()
	for j in 1 2 3 4 5 6 7 8; do
		kds-create -n 3 s 2>err$j &
		pids+=($!)
	done
	ok=0
	for j in 1 2 3 4 5 6 7 8; do
		if wait "${pids[j - 1]}"; then
			ok=$((ok + 1))
			[ ! -s err$j ]
		else
			[ "$(cat err$j)" = "kds-create: s: File exists" ]
		fi
	done
	[ "$ok" -eq 1 ]
	grep -qx 'next-shard 3' s/meta
	echo x | kds-put s
}
