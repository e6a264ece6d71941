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
