#!/usr/bin/env bash
# make bench: kds-put and kds-get against cat, on one filesystem, in one run.
# A benchmark, not a test: it prints figures and asserts nothing.
set -euo pipefail
B=${KDS_BUILD:-$(dirname "$0")/../build}
export PATH="$B:$PATH"
dir=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/kds-bench.XXXXXX")}
trap 'rm -rf "$dir"' EXIT
records=${BENCH_RECORDS:-1000000}
shards=${BENCH_SHARDS:-4}

# Clickstream-like lines of exactly 100 bytes with the newline.
python3 - "$records" >"$dir/in" <<'PY'
import sys, random
random.seed(7)
pages = ["/", "/cart", "/checkout", "/search?q=shoes", "/item/4711", "/login"]
out = sys.stdout
for i in range(int(sys.argv[1])):
    s = "2026-11-28T10:%02d:%02d.%03dZ user%06d GET %s 200 ref=%d" % (
        i // 60000 % 60, i // 1000 % 60, i % 1000, random.randrange(1000000),
        random.choice(pages), i)
    out.write(s[:99].ljust(99, "x") + "\n")
PY
bytes=$(stat -c %s "$dir/in")

now() { date +%s.%N; }
best() {	# best of 3 runs of "$@", in seconds
	local b="" t0 t1 t
	for _ in 1 2 3; do
		t0=$(now); "$@"; t1=$(now)
		t=$(echo "$t1 - $t0" | bc -l)
		if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
	done
	echo "$b"
}
run_cat() { cat "$dir/in" >"$dir/out"; }
fresh() { rm -rf "$dir/s"; kds-create -n "$shards" "$dir/s"; }
run_put() { fresh; kds-put --sync=never "$dir/s" <"$dir/in"; }
run_put_sync() { fresh; kds-put "$dir/s" <"$dir/in"; }
run_pipe_cat() { cat "$dir/in" | cat >"$dir/out"; }
run_get() { kds-get "$dir/s" >"$dir/out"; }

tc=$(best run_cat)
tcp=$(best run_pipe_cat)
tps=$(best run_put_sync)
tp=$(best run_put)
tg=$(best run_get)
[ "$(wc -l <"$dir/out")" -eq "$records" ] || { echo "bench: kds-get lost records" >&2; exit 1; }

row() {	# name seconds
	awk -v n="$1" -v t="$2" -v r="$records" -v b="$bytes" -v c="$tc" 'BEGIN {
		printf "%-28s %10.0f %10.1f %8.0f%%\n", n, r / t, b / t / 1e6, c / t * 100 }'
}
echo "kds bench: $records records of 100 bytes, $shards shards, $(df -T "$dir" | awk 'NR==2 {print $2}') at $dir"
printf "%-28s %10s %10s %9s\n" "" "records/s" "MB/s" "of cat"
row "cat file >file (the limit)" "$tc"
row "cat | cat >file" "$tcp"
row "kds-put --sync=never" "$tp"
row "kds-put (fsync at exit)" "$tps"
row "kds-get >file" "$tg"

# A split closes a shard and makes two empty children: it copies nothing, so
# it should take as long on a stream of 1 GB as on one of 1 MB.  Each stream
# is one shard of records of about 1 MB (1 KB for the small one), put
# without syncing; sync(1) runs first so that the split's own fdatasync
# does not pay for someone else's writes.  The best of 3 splits, each of a
# copy whose segments are hard links: a split writes no segment.
bench_reshard() {
	local t1 t2
	mk() {	# mk NAME BYTES RECORD-BYTES
		rm -rf "$dir/$1"
		kds-create --segment-bytes 256M "$dir/$1"
		python3 - "$2" "$3" <<'PY' | kds-put --sync=never -k k "$dir/$1"
import sys
total, size = int(sys.argv[1]), int(sys.argv[2])
line = b"x" * (size - 1) + b"\n"
out = sys.stdout.buffer
for _ in range(total // size):
    out.write(line)
PY
		sync
	}
	copy() {	# copy NAME: NAME.copy, its segments hard links
		rm -rf "$dir/$1.copy"
		cp -al "$dir/$1" "$dir/$1.copy"
		# meta is replaced and tails rewritten: those must be copies
		rm "$dir/$1.copy/meta" && cp "$dir/$1/meta" "$dir/$1.copy/meta"
		rm "$dir/$1.copy/shardId-000000000000/tail"
		cp "$dir/$1/shardId-000000000000/tail" "$dir/$1.copy/shardId-000000000000/"
		sync
	}
	best_split() {	# best_split NAME: ms of the fastest of 3 splits
		local b="" t0 t1 t
		for _ in 1 2 3; do
			copy "$1"
			t0=$(now)
			kds-reshard "$dir/$1.copy" split 0 >/dev/null
			t1=$(now)
			t=$(echo "($t1 - $t0) * 1000" | bc -l)
			if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
		done
		echo "$b"
	}
	mk r1m $((1024 * 1024)) 1024
	mk r1g $((1024 * 1024 * 1024)) $((1000 * 1000))
	t1=$(best_split r1m)
	t2=$(best_split r1g)
	printf '%-28s %10s\n' "kds-reshard split of" "ms"
	printf '%-28s %10.1f\n' "a 1 MB shard" "$t1" \
	    "a $(du -sh "$dir/r1g" | cut -f1) shard" "$t2"
	rm -rf "$dir"/r1m* "$dir"/r1g*
}
bench_reshard
# Follow latency: single records trickled 10 ms apart, each by its own
# kds-put, while kds-get -F follows; the time from a record's arrival (when
# kds-put stored it) to the follower's line being read, median and p99.
bench_follow_latency() {
	local n=${BENCH_FOLLOW_RECORDS:-200} gap=${BENCH_FOLLOW_GAP_MS:-10}
	rm -rf "$dir/f"
	kds-create "$dir/f"
	python3 "$(dirname "$0")/tools/kds-latency.py" "$dir/f" "$n" "$gap" |
	    sort -n | awk -v n="$n" -v g="$gap" '{ v[NR] = $1 } END {
		printf "kds-get -F latency, put to output (%d records, %d ms apart): median %.1f ms, p99 %.1f ms, max %.1f ms\n",
		    n, g, v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.5)], v[NR] }'
}
bench_follow_latency
