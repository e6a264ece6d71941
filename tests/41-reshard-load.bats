#!/usr/bin/env bats
# 41-reshard-load: a stream scaled from 1 shard to 8 and back to 3 while 4
# producers write 200,000 records: every record is read back exactly once,
# in order for each partition key, and none went to a closed shard.

load helper

LINEAGE=$TOOLS/kds-lineage.py

# feed P N: N lines "pP-kK P I" (I from 1, key K = I mod 40), 250 at a
# time.  At a steady pace (20 ms apart) after line 3N/20 until the file
# scaled8 is there, and after line 11N/20 until scaled3 is; at full speed
# otherwise.  The test makes those files once each reshard is done: the
# producers are still writing when the reshards come, however long they
# take, and wait for nothing more.
feed() {
	python3 - "$1" "$2" <<'EOF'
import os, sys, time
p, n = sys.argv[1], int(sys.argv[2])
chunk = 250
gates = ((n * 3 // 20, "scaled8"), (n * 11 // 20, "scaled3"))
for start in range(1, n + 1, chunk):
    end = min(start + chunk, n + 1)
    sys.stdout.write("".join("p%s-k%d p%s %d\n" % (p, i % 40, p, i)
                             for i in range(start, end)))
    sys.stdout.flush()
    if any(end > line and not os.path.exists(f) for line, f in gates):
        time.sleep(0.02)
EOF
}

count() {
	kds-get $E s | wc -l
}

# wait_count N: poll until the stream holds N records or more (60 s).
wait_count() {
	local i
	for ((i = 0; i < 600; i++)); do
		(($(count) >= $1)) && return 0
		sleep 0.1
	done
	echo "wait_count: still $(count) records, not $1" >&2
	return 1
}

@test "scale 1 to 8 and back to 3 under 4 producers: 200,000 records, each once, in key order" {
	mkstream s
	pids=()
	for p in 1 2 3 4; do
		feed "$p" 50000 | kds-put -f 1 -d ' ' s 2>"put$p.err" &
		pids+=($!)
	done
	wait_count 30000
	kds-reshard s scale 8 >scale8
	touch scaled8
	wait_count 110000
	kds-reshard s scale 3 >scale3
	touch scaled3
	for pid in "${pids[@]}"; do
		wait "$pid"
	done
	for p in 1 2 3 4; do
		[ ! -s "put$p.err" ]
	done
	kds-get $E --format '%p %k %s\n' s >got
	[ "$(wc -l <got)" -eq 200000 ]
	python3 "$LINEAGE" check s
	same <(python3 "$LINEAGE" open s) <(python3 "$LINEAGE" ranges 3)
	# the independent decoder: every closed shard ends at its last record,
	# so nothing was appended to a shard after it closed
	n=$(decoded_count s)
	[ "$n" -eq 200000 ]
	python3 - scale8 scale3 >&3 <<'EOF'
import sys
mid = set(open(sys.argv[1]).read().split())      # made by scale 8
last = set(open(sys.argv[2]).read().split())     # made by scale 3
seen, prev, where = set(), {}, {"first": 0, "mid": 0, "last": 0}
for line in open("got"):
    sid, key, dkey, p, i = line.split()     # the data is the whole line
    i = int(i)
    assert dkey == key, line
    assert (p, i) not in seen, "read twice: %s" % line
    seen.add((p, i))
    assert key == "%s-k%d" % (p, i % 40), line
    assert prev.get(key, 0) < i, "out of order for %s: %d after %d" % (key, i, prev[key])
    prev[key] = i
    where["first" if sid == "shardId-000000000000" else
          "mid" if sid in mid else "last" if sid in last else "?"] += 1
assert len(seen) == 200000, len(seen)
# records went to the first shard, to the 8 and to the 3 (and to the
# shards between): the reshards happened while the producers wrote
assert where["first"] and where["mid"] and where["last"], where
print("# records by when their shard was made: " +
      " ".join("%s=%d" % kv for kv in sorted(where.items())))
EOF
}
