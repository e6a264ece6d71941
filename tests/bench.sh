#!/usr/bin/env bash
# make bench: every figure kds promises, measured in one run on one
# filesystem, printed as one markdown table with the goal beside each
# figure, and written to BENCHMARKS.md.  A benchmark, not a test: it
# asserts nothing, and make check does not run it.
#
# Environment:
#   KDS_BUILD    the tools (default: ../build beside this directory)
#   BENCH_DIR    where to work, on the filesystem to measure (default
#                $TMPDIR or /tmp); a kds-bench.XXXXXX directory is made in
#                it and removed at the end
#   BENCH_SCALE  multiplies every size and count (default 1); 0.1 checks
#                the script in a minute or two
#   BENCH_RUNS   runs of each throughput figure, the best kept (default 3)
#   BENCH_SEEK_RUNS  runs of each seek, the best kept (default 5)
#   BENCH_BIG    0: skip the 2 GB stream (it is skipped anyway, with a
#                note, when the filesystem has too little free space)
#   BENCH_OUT    where to write the table; by default BENCHMARKS.md at
#                the top of the tree for a full-size run (BENCH_SCALE=1),
#                and nowhere for a scaled one, so that a quick check never
#                replaces the committed figures
#   BENCH_RSS    wrapper: measure peak RSS with the wait4 wrapper below
#                even where GNU time is
#   CC           compiles a 20-line peak-RSS wrapper when /usr/bin/time is
#                not GNU time
#
# Method: wall-clock time of whole commands, from bash's $EPOCHREALTIME,
# best of BENCH_RUNS; the input file and the streams are in the page cache
# (hot), as are cat's, so the figures compare CPU and system-call cost.
set -euo pipefail
export LC_ALL=C			# $EPOCHREALTIME with a decimal point
unset KDS_ROOT KDS_NOW

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
B=${KDS_BUILD:-$root/build}
export PATH="$B:$PATH"
scale=${BENCH_SCALE:-1}
runs=${BENCH_RUNS:-3}
seek_runs=${BENCH_SEEK_RUNS:-5}
big=${BENCH_BIG:-1}
if [ -n "${BENCH_OUT+set}" ]; then
	out=$BENCH_OUT
elif awk -v s="$scale" 'BEGIN { exit !(s == 1) }'; then
	out=$root/BENCHMARKS.md
else
	out=
fi
base_dir=${BENCH_DIR:-${TMPDIR:-/tmp}}
dir=$(mktemp -d "$base_dir/kds-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
# python3 through a pyenv shim costs 100 ms a call: find it once.
PY=$(command python3 -c 'import sys; print(sys.executable)')

for t in kds-create kds-put kds-get kds-describe kds-reshard kds-expire; do
	command -v "$t" >/dev/null || { echo "bench: no $t in $B: make first" >&2; exit 1; }
done

say() { echo "bench: $*" >&2; }
# sc N [MIN]: N times the scale, rounded, at least MIN (default 1).
sc() { awk -v n="$1" -v s="$scale" -v m="${2:-1}" 'BEGIN { v = int(n * s + 0.5); print v < m ? m : v }'; }
# calc EXPR: awk arithmetic on numbers in EXPR.
calc() { awk "BEGIN { print $1 }"; }

# time_min VAR CMD...: run CMD once, timed; VAR becomes the lesser of its
# value (none at first) and this run's seconds.
time_min() {
	local tm_var=$1 tm_t0 tm_t1
	shift
	tm_t0=$EPOCHREALTIME
	"$@"
	tm_t1=$EPOCHREALTIME
	printf -v "$tm_var" '%s' "$(awk -v a="$tm_t0" -v z="$tm_t1" \
	    -v b="${!tm_var}" 'BEGIN { t = z - a; print (b == "" || t < b) ? t : b }')"
}

# best VAR SETUP CMD...: the fastest of $runs runs of CMD, in seconds, into
# VAR; SETUP (a command, or :) runs before each, untimed.
best() {
	local b_var=$1 b_setup=$2 b_t="" b_i
	shift 2
	for ((b_i = 0; b_i < runs; b_i++)); do
		$b_setup
		time_min b_t "$@"
	done
	printf -v "$b_var" '%s' "$b_t"
}

# best2 VAR REFVAR SETUP CMD REFSETUP REFCMD: as best, for CMD and for the
# reference REFCMD in turn, run after run, so that the two see the same
# machine: a VM's neighbours can slow cat by half between one minute and
# the next, and a ratio of figures taken minutes apart would measure that.
best2() {
	local b2_t="" b2_r="" b2_i
	for ((b2_i = 0; b2_i < runs; b2_i++)); do
		$5
		time_min b2_r "$6"
		$3
		time_min b2_t "$4"
	done
	printf -v "$1" '%s' "$b2_t"
	printf -v "$2" '%s' "$b2_r"
}

# The table: rows are collected here and printed at the end.
ROWS=()
NOTES=()
section() { ROWS+=("| **$1** | | | | | | |"); }
# row WHAT RECORDS/S MB/S OF-CAT FIGURE GOAL MET
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"); }
# met TRUE-IF-AWK-EXPR: pass or miss
met() { if awk "BEGIN { exit !($1) }"; then echo pass; else echo miss; fi; }
# thru WHAT SECONDS RECORDS BYTES LIMIT-SECONDS [GOAL-PERCENT [FIGURE]]
thru() {
	local rs mbs of goal="" ok=""
	rs=$(commas "$(calc "$3 / $2")")
	mbs=$(awk -v b="$4" -v t="$2" 'BEGIN { printf "%.1f", b / t / 1e6 }')
	of=$(awk -v c="$5" -v t="$2" 'BEGIN { printf "%.0f%%", c / t * 100 }')
	if [ -n "${6-}" ]; then
		goal="≥ $6% of cat"
		ok=$(met "$5 / $2 * 100 >= $6")
	fi
	row "$1" "$rs" "$mbs" "$of" "${7-}" "$goal" "$ok"
}
# thru_beside WHAT SECONDS REF-SECONDS FIRST-SECONDS RECORDS BYTES [GOAL]:
# thru, of the faster of two cats: the one timed alongside (best2) and the
# section's first.  Alongside, so that a slow spell of the machine's does
# not make kds look faster than it is; the faster, so that a cat caught in
# such a spell does not either.  The figure column gives both.
thru_beside() {
	local fig lim
	fig=$(awk -v b="$6" -v r="$3" -v f="$4" 'BEGIN {
		printf "cat alongside %.0f MB/s, first %.0f", b / r / 1e6, b / f / 1e6 }')
	lim=$(awk -v r="$3" -v f="$4" 'BEGIN { print r < f ? r : f }')
	thru "$1" "$2" "$5" "$6" "$lim" "${7-}" "$fig"
}
# commas N: N rounded, with thousands separators.
commas() {
	awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); r = ""
		while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
		print s r }'
}
shards() { if [ "$1" = 1 ]; then echo "1 shard"; else echo "$1 shards"; fi; }
ms() { awk -v t="$1" 'BEGIN { printf "%.1f ms", t * 1000 }'; }

# Peak RSS: GNU time's %M where /usr/bin/time is GNU time, else a wrapper
# that forks, execs and takes ru_maxrss from wait4(2).  Not python's
# getrusage(RUSAGE_CHILDREN): a child forked from python carries python's
# own resident set, 10 MiB and more, into its high-water mark across exec.
if [ "${BENCH_RSS-}" != wrapper ] &&
    /usr/bin/time -f %M -o "$dir/probe" true 2>/dev/null &&
    [ "$(tail -n 1 "$dir/probe" 2>/dev/null)" -gt 0 ] 2>/dev/null; then
	rss_how=time
	rss_label="GNU time's %M"
else
	rss_how=wrapper
	cat >"$dir/maxrss.c" <<'EOF'
/* maxrss FILE CMD...: run CMD, write its peak RSS in KiB to FILE. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int
main(int argc, char *argv[])
{
	struct rusage ru;
	FILE *f;
	pid_t pid;
	int st;

	if (argc < 3)
		return 2;
	if ((pid = fork()) == 0) {
		execvp(argv[2], argv + 2);
		_exit(127);
	}
	if (pid == -1 || wait4(pid, &st, 0, &ru) == -1 ||
	    (f = fopen(argv[1], "w")) == NULL)
		return 2;
	fprintf(f, "%ld\n", ru.ru_maxrss);
	if (fclose(f) == EOF)
		return 2;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
EOF
	rss_label="ru_maxrss from wait4(2)"
	"${CC:-cc}" -O2 -o "$dir/maxrss" "$dir/maxrss.c" 2>/dev/null || rss_how=none
fi
# rss WHAT CMD...: run CMD once, untimed, and note its peak RSS.
rss() {
	local what=$1
	shift
	case $rss_how in
	time)	/usr/bin/time -f %M -o "$dir/rss.one" "$@" ;;
	wrapper) "$dir/maxrss" "$dir/rss.one" "$@" ;;
	*)	"$@"; return ;;
	esac
	printf '%s\t%s\t%s\n' "$1" "$(tail -n 1 "$dir/rss.one")" "$what" >>"$dir/rss"
}

# gen BYTES N: N clickstream-like lines of exactly BYTES bytes with the
# newline.
gen() {
	"$PY" - "$1" "$2" <<'PY'
import sys, random
random.seed(7)
size, n = int(sys.argv[1]), int(sys.argv[2])
pages = ["/", "/cart", "/checkout", "/search?q=shoes", "/item/4711", "/login"]
out = sys.stdout
for i in range(n):
    s = "2026-11-28T10:%02d:%02d.%03dZ user%06d GET %s 200 ref=%d " % (
        i // 60000 % 60, i // 1000 % 60, i % 1000, random.randrange(1000000),
        random.choice(pages), i)
    out.write((s * (size // len(s) + 1))[:size - 1] + "\n")
PY
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
fstype=$(stat -f -c %T "$dir")
# stat -f names ext4 ext2/ext3 (one magic number): findmnt knows better.
mnt=$(findmnt -n -o FSTYPE -T "$dir" 2>/dev/null || true)
[ -z "$mnt" ] || [ "$mnt" = "$fstype" ] || fstype="$mnt ($fstype to stat -f)"
say "working in $dir ($fstype), scale $scale"

# --- Throughput: kds-put and kds-get beside cat --------------------------
# A fresh stream for each run of kds-put, made and synced untimed; kds-get
# reads the stream the last kds-put wrote.  kds-put with neither -k nor -f
# spreads records round-robin (no MD5); the -f row hashes a key per record.
in=
S=
put_setup() { rm -rf "$dir/s" "$dir/out"; kds-create -n "$S" "$dir/s"; sync; }
out_setup() { rm -f "$dir/out"; }
cat_file() { cat "$in" >"$dir/out"; }
cat_pipe() { cat "$in" | cat >/dev/null; }
dd_file() { dd if="$in" of="$dir/out" bs=128K status=none; }
put_never() { kds-put --sync=never "$dir/s" <"$in"; }
put_exit() { kds-put "$dir/s" <"$in"; }
put_field() { kds-put --sync=never -f 2 -d ' ' "$dir/s" <"$in"; }
get_file() { kds-get "$dir/s" >"$dir/out"; }
get_pipe() { kds-get "$dir/s" | cat >/dev/null; }
declare -A one_put	# records/s of one kds-put --sync=never, by shards

bench_throughput() {	# bench_throughput RECORD-BYTES RECORDS
	local size=$1 n=$2 bytes tc tcp t r goal=
	in=$dir/in$size
	gen "$size" "$n" >"$in"
	bytes=$(stat -c %s "$in")
	[ "$size" = 100 ] && goal=60
	section "$(commas "$n") records of $size bytes ($(calc "$bytes / 1e6") MB)"
	say "cat, $size-byte records"
	best tc out_setup cat_file
	best tcp : cat_pipe
	best t out_setup dd_file
	thru "cat file >file (the limit)" "$tc" "$n" "$bytes" "$tc"
	thru "dd bs=128K: read(2) and write(2), as kds-put must" "$t" "$n" "$bytes" "$tc"
	thru "cat file \\| cat >/dev/null (the limit of a pipe)" "$tcp" "$n" "$bytes" "$tcp"
	# 4 shards is the foundation issue's own case, whose goal is half
	# of cat; 1 and 8 are the performance issue's, whose goal is 60%.
	local counts="1 8" g
	[ "$size" = 100 ] && counts="1 4 8"
	for S in $counts; do
		g=$goal
		[ "$S" = 4 ] && g=50
		say "kds-put and kds-get, $size-byte records, $(shards "$S")"
		best2 t r put_setup put_never out_setup cat_file
		thru_beside "kds-put --sync=never, $(shards "$S")" "$t" "$r" "$tc" "$n" "$bytes" $g
		[ "$size" = 100 ] && one_put[$S]=$(calc "$n / $t")
		if [ "$size" = 100 ] && [ "$S" = 8 ]; then
			best t put_setup put_field
			thru "kds-put --sync=never -f 2 (MD5 of a key per record), $S shards" \
			    "$t" "$n" "$bytes" "$tc"
		fi
		best t put_setup put_exit
		thru "kds-put (default: fdatasync at exit), $(shards "$S")" "$t" "$n" "$bytes" "$tc"
		best2 t r out_setup get_file out_setup cat_file
		thru_beside "kds-get >file, $(shards "$S")" "$t" "$r" "$tc" "$n" "$bytes" $g
		best2 t r : get_pipe : cat_pipe
		thru_beside "kds-get \\| cat >/dev/null, $(shards "$S")" "$t" "$r" "$tcp" "$n" "$bytes" $g
		if [ "$S" = 8 ]; then
			put_setup
			rss "$(commas "$n") records of $size bytes into 8 shards" kds-put "$dir/s" <"$in"
			rss "$(commas "$n") records of $size bytes from 8 shards" kds-get "$dir/s" >/dev/null
		fi
	done
	rm -rf "$dir/s" "$dir/out"
	[ "$size" = 100 ] || rm -f "$in"
}

# --- Producers at once ----------------------------------------------------
# The 100-byte input in 4 parts, 4 kds-put --sync=never at once, into a
# fresh stream of 1 and of 8 shards; beside one kds-put of the whole.
parts() { for p in "$dir"/part4.*; do kds-put --sync=never "$dir/s" <"$p" & done; wait; }
bench_producers() {	# bench_producers RECORDS
	local n=$1 t rs x
	in=$dir/in100
	split -n l/4 -d "$in" "$dir/part4."
	section "4 concurrent producers, $(commas "$n") records of 100 bytes in all"
	for S in 1 8; do
		say "4 producers, $(shards "$S")"
		best t put_setup parts
		rs=$(calc "$n / $t")
		x=$(calc "$rs / ${one_put[$S]}")
		row "4 × kds-put --sync=never, $(shards "$S")" "$(commas "$rs")" \
		    "$(awk -v b="$(stat -c %s "$in")" -v t="$t" 'BEGIN { printf "%.1f", b / t / 1e6 }')" \
		    "" "$(printf '%.2f× one producer' "$x")" "" ""
	done
	rm -rf "$dir/s" "$dir"/part4.*
}

# --- Group commit ---------------------------------------------------------
# --sync=always: kds-put fsyncs each batch after releasing the shard's lock,
# so that producers of one shard share flushes.  A producer here is one
# kds-put -p fed a record at a time, each answered before the next is sent,
# as PutRecord callers are: every record its own batch, synced before its
# answer.  The records/s of 1 and of 4 such producers at once into one
# shard, and the same with --sync=never, which shows what 4 gain without
# any fsync (each record waits for input to go quiet, FLUSH_IDLE_MS, before
# it is written).  (A loop of one-record kds-put runs, the earlier form of
# this figure, measures process start-up more than fsync.)
gc_run() {	# gc_run PRODUCERS N SYNC: records/s into gc_r
	rm -rf "$dir/g"
	kds-create "$dir/g"
	sync
	gc_r=$("$PY" - "$dir/g" "$2" "$1" "$3" <<'PY'
import subprocess, sys, threading, time
stream, n, k, sync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def producer(i):
    p = subprocess.Popen(["kds-put", "-p", "--sync=" + sync, "-k", "p%d" % i,
                          stream], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, bufsize=0)
    rec = b"0" * 99 + b"\n"
    for _ in range(n):
        p.stdin.write(rec)
        p.stdout.readline()
    p.stdin.close()
    p.wait()
ts = [threading.Thread(target=producer, args=(i,)) for i in range(k)]
t0 = time.perf_counter()
for t in ts:
    t.start()
for t in ts:
    t.join()
print("%.0f" % (k * n / (time.perf_counter() - t0)))
PY
)
}
bench_group_commit() {	# bench_group_commit RECORDS-PER-PRODUCER ACKED-RECORDS
	local n=$1 na=$2 mode r1 r4 x4 xn=""
	section "--sync=always: group commit, one shard, each record answered before the next"
	for mode in never always; do
		say "group commit, --sync=$mode"
		gc_run 1 "$n" "$mode"
		r1=$gc_r
		gc_run 4 "$n" "$mode"
		r4=$gc_r
		x4=$(calc "$r4 / $r1")
		row "--sync=$mode, 1 producer" "$(commas "$r1")" "" "" "" "" ""
		if [ "$mode" = never ]; then
			xn=$x4
			row "--sync=$mode, 4 producers" "$(commas "$r4")" "" "" \
			    "$(printf '%.2f× one (no fsync: the CPU'"'"'s share)' "$x4")" "" ""
		else
			row "--sync=$mode, 4 producers" "$(commas "$r4")" "" "" \
			    "$(printf '%.2f× one (%.2f× with --sync=never)' "$x4" "$xn")" \
			    "well over 1× one (≥ 1.5×)" "$(met "$x4 >= 1.5")"
		fi
	done
	say "kds-put -p --sync=always, a record per answer"
	rm -rf "$dir/g"
	kds-create "$dir/g"
	"$PY" - "$dir/g" "$na" >"$dir/acked" <<'PY'
import subprocess, sys, time
stream, n = sys.argv[1], int(sys.argv[2])
p = subprocess.Popen(["kds-put", "-p", "--sync=always", "-k", "k", stream],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
rec, lat = b"0" * 99 + b"\n", []
t0 = time.perf_counter()
for _ in range(n):
    t = time.perf_counter()
    p.stdin.write(rec)
    p.stdout.readline()
    lat.append((time.perf_counter() - t) * 1000)
total = time.perf_counter() - t0
p.stdin.close()
p.wait()
lat.sort()
print("%.0f %.1f" % (n / total, lat[len(lat) // 2]))
PY
	read -r r1 x4 <"$dir/acked"
	row "kds-put -p --sync=always, 1 producer, each record answered before the next" \
	    "$r1" "" "" "median answer $x4 ms" "" ""
	rm -rf "$dir/g"
}

# --- Seek: time to the first record ---------------------------------------
# One shard of 100-byte records put in 20 equal parts, part i with its
# arrival time (KDS_NOW) 60 s after part i - 1; the seek goes to the first
# record of part 10, the middle, by AT_TIMESTAMP and by AT_SEQUENCE_NUMBER,
# kds-get -n 1 to /dev/null, the best of BENCH_SEEK_RUNS.  The streams are
# in the page cache.
seek_base=$(( $(date +%s) - 7200 ))
mkseek() {	# mkseek NAME FILE...: one part per file
	local i=0 f name=$1
	rm -rf "$dir/$name"
	KDS_NOW=$seek_base kds-create "$dir/$name"
	shift
	for f in "$@"; do
		KDS_NOW=$((seek_base + 60 * i)) kds-put --sync=never "$dir/$name" <"$f"
		i=$((i + 1))
	done
}
seek_ts() { kds-get -n 1 --timestamp "$((seek_base + 600))" "$dir/$seek_s" >/dev/null; }
seek_seq() { kds-get -n 1 --sequence "$seek_q" "$dir/$seek_s" >/dev/null; }
declare -A seek_t
bench_seek_one() {	# bench_seek_one NAME LABEL
	local t
	seek_s=$1
	sync
	seek_q=$(kds-get -n 1 --timestamp "$((seek_base + 600))" --format '%o\n' "$dir/$1")
	local o=$runs
	runs=$seek_runs
	best t : seek_ts
	seek_t[$1.ts]=$t
	best t : seek_seq
	seek_t[$1.seq]=$t
	runs=$o
}
bench_seek() {	# bench_seek
	local part=() i small_mb big_mb need avail x
	in=$dir/in100
	split -n l/20 -d "$in" "$dir/part20."
	small_mb=$(calc "$(stat -c %s "$in") / 1e6")
	say "seek: a $small_mb MB stream"
	mkseek seek_small "$dir"/part20.*
	rm -f "$dir"/part20.*
	bench_seek_one seek_small
	rss "-n 1 AT_TIMESTAMP" kds-get -n 1 --timestamp "$((seek_base + 600))" "$dir/seek_small" >/dev/null
	rss "a $small_mb MB shard" kds-describe "$dir/seek_small" >/dev/null
	section "time to the first record: kds-get -n 1, one shard, best of $seek_runs"
	row "AT_TIMESTAMP, $small_mb MB stream" "" "" "" "$(ms "${seek_t[seek_small.ts]}")" "" ""
	row "AT_SEQUENCE_NUMBER, $small_mb MB stream" "" "" "" "$(ms "${seek_t[seek_small.seq]}")" "" ""
	big_mb=$(calc "$small_mb * 20")
	# framing and indexes: a 100-byte record takes about 140 bytes
	need=$(awk -v n="$(stat -c %s "$in")" 'BEGIN { printf "%.0f", n * 20 * 1.6 }')
	avail=$(df -P -B1 "$dir" | awk 'NR == 2 { print $4 }')
	if [ "$big" = 0 ]; then
		NOTES+=("The $big_mb MB seek stream was skipped (BENCH_BIG=0).")
		row "AT_TIMESTAMP and AT_SEQUENCE_NUMBER, $big_mb MB stream" "" "" "" "skipped (BENCH_BIG=0)" "" ""
	elif [ "$avail" -lt "$need" ]; then
		NOTES+=("The $big_mb MB seek stream was skipped: $((avail / 1000000)) MB free on $fstype, $((need / 1000000)) MB needed.")
		row "AT_TIMESTAMP and AT_SEQUENCE_NUMBER, $big_mb MB stream" "" "" "" "skipped (disk space)" "" ""
	else
		say "seek: a $big_mb MB stream"
		for ((i = 0; i < 20; i++)); do part+=("$in"); done
		mkseek seek_big "${part[@]}"
		bench_seek_one seek_big
		rss "a $big_mb MB shard" kds-describe "$dir/seek_big" >/dev/null
		for x in ts:AT_TIMESTAMP seq:AT_SEQUENCE_NUMBER; do
			row "${x#*:}, $big_mb MB stream" "" "" "" \
			    "$(ms "${seek_t[seek_big.${x%%:*}]}") ($(printf '%.2f' "$(calc "${seek_t[seek_big.${x%%:*}]} / ${seek_t[seek_small.${x%%:*}]}")")× the $small_mb MB)" \
			    "≤ 2× the $small_mb MB stream" \
			    "$(met "${seek_t[seek_big.${x%%:*}]} <= 2 * ${seek_t[seek_small.${x%%:*}]}")"
		done
		rm -rf "$dir/seek_big"
	fi
	rm -rf "$dir/seek_small"
}

# --- Follow latency -------------------------------------------------------
# Single records trickled 10 ms apart, each by its own kds-put, while
# kds-get -F follows; the time from a record's arrival (when kds-put stored
# it, %T) to the follower's line being read, median and p99.
bench_follow_latency() {	# bench_follow_latency RECORDS
	local n=$1 gap=${BENCH_FOLLOW_GAP_MS:-10} med p99 mx
	say "kds-get -F latency, $n records"
	rm -rf "$dir/f"
	kds-create "$dir/f"
	"$PY" "$here/tools/kds-latency.py" "$dir/f" "$n" "$gap" | sort -n >"$dir/lat"
	read -r med p99 mx < <(awk '{ v[NR] = $1 } END {
		i = int(NR * 0.99 + 0.5); if (i < 1) i = 1
		print v[int((NR + 1) / 2)], v[i], v[NR] }' "$dir/lat")
	section "kds-get -F: put to output, $n records $gap ms apart, each by its own kds-put"
	row "latency, median" "" "" "" "$med ms" "" ""
	row "latency, p99 (max $mx ms)" "" "" "" "$p99 ms" "< 5 ms" "$(met "$p99 < 5")"
	rm -rf "$dir/f"
}

# --- Expire ---------------------------------------------------------------
# A stream of SEGMENTS segments of 4 KB (--segment-bytes 4K: 30 records of
# 100 bytes under one key fill one), put two days ago through KDS_NOW, so
# that the default retention of 24 h has passed them all; then one
# kds-expire, timed, on a copy of it, the best of BENCH_RUNS copies.
expire_setup() { rm -rf "$dir/e.copy"; cp -a "$dir/e" "$dir/e.copy"; sync; }
expire_run() { kds-expire "$dir/e.copy"; }
bench_expire() {	# bench_expire SEGMENTS
	local n=$1 old t segs left
	old=$(( $(date +%s) - 2 * 86400 ))
	say "kds-expire over $n segments"
	rm -rf "$dir/e"
	KDS_NOW=$old kds-create --segment-bytes 4K "$dir/e"
	head -n $((30 * n)) "$dir/in100" | KDS_NOW=$old kds-put --sync=never -k k "$dir/e"
	segs=$(find "$dir/e" -name '*.seg' | wc -l)
	best t expire_setup expire_run
	left=$(find "$dir/e.copy" -name '*.seg' | wc -l)
	expire_setup
	rss "$segs segments" kds-expire "$dir/e.copy"
	section "kds-expire, best of $runs"
	row "one run over $segs expired segments of 4 KB ($left left: the writer's new one)" \
	    "" "" "" "$(ms "$t")" "" ""
	rm -rf "$dir/e" "$dir/e.copy"
}

# --- Reshard --------------------------------------------------------------
# A split closes a shard and makes two empty children: it copies nothing, so
# it should take as long on a stream of 1 GB as on one of 1 MB.  Each stream
# is one shard of records of about 1 MB (1 KB for the small one), put
# without syncing; sync(1) runs first so that the split's own fdatasync
# does not pay for someone else's writes.  The best of 3 splits, each of a
# copy whose segments are hard links: a split writes no segment.
# --- zstd at rest -----------------------------------------------------------
# Clickstream JSON lines (about 230 bytes, tests/tools/kds-clicks.py, as
# tests/55-compress.bats makes them) put into a stream of 4 MB segments, then kds-expire
# --compress-after 0s: the compressed segments and indexes beside the
# segments and indexes they replaced and beside the records' own bytes;
# and kds-get of the whole stream, compressed and not (a copy made before),
# in MB/s of record data.
bench_compress() {	# bench_compress RECORDS
	local n=$1 bytes seg=0 z=0 f tz tr
	say "zstd at rest, $n JSON lines"
	"$PY" "$here/tools/kds-clicks.py" "$n" >"$dir/json"
	bytes=$(stat -c %s "$dir/json")
	rm -rf "$dir/z" "$dir/z.raw"
	kds-create --segment-bytes 4M "$dir/z"
	kds-put --sync=never -k k "$dir/z" <"$dir/json"
	cp -a "$dir/z" "$dir/z.raw"
	kds-expire --compress-after 0s "$dir/z"
	sync
	# the segments compressed: those that have a .zseg now
	for f in "$dir"/z/shardId-000000000000/*.zseg; do
		f=${f##*/}
		f=${f%.zseg}
		seg=$((seg + $(stat -c %s "$dir/z.raw/shardId-000000000000/$f.seg") +
		    $(stat -c %s "$dir/z.raw/shardId-000000000000/$f.idx")))
		z=$((z + $(stat -c %s "$dir/z/shardId-000000000000/$f.zseg") +
		    $(stat -c %s "$dir/z/shardId-000000000000/$f.zidx")))
	done
	section "zstd at rest: $(commas "$n") clickstream JSON lines ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB), 4 MB segments"
	row "compressed segments and indexes, of the plain ones they replaced" "" "" "" \
	    "$(awk -v z="$z" -v s="$seg" 'BEGIN { printf "%.1f%% (%.1f of %.1f MB)", z / s * 100, z / 1e6, s / 1e6 }')" \
	    "≤ 25% of raw" "$(met "$z / $seg <= 0.25")"
	row "the whole stream on disk, of its records' bytes (the last segment stays plain)" "" "" "" \
	    "$(awk -v d="$(du -sb "$dir/z" | cut -f1)" -v b="$bytes" 'BEGIN { printf "%.1f%%", d / b * 100 }')" "" ""
	get_z() { kds-get "$dir/z" >/dev/null; }
	get_r() { kds-get "$dir/z.raw" >/dev/null; }
	best tr : get_r
	best tz : get_z
	row "kds-get >/dev/null, plain segments" "$(commas "$(calc "$n / $tr")")" \
	    "$(awk -v b="$bytes" -v t="$tr" 'BEGIN { printf "%.1f", b / t / 1e6 }')" "" "" "" ""
	row "kds-get >/dev/null, compressed segments" "$(commas "$(calc "$n / $tz")")" \
	    "$(awk -v b="$bytes" -v t="$tz" 'BEGIN { printf "%.1f", b / t / 1e6 }')" "" \
	    "$(printf '%.2f× the plain speed' "$(calc "$tr / $tz")")" "" ""
	rm -rf "$dir/z" "$dir/z.raw" "$dir/json"
}

bench_reshard() {	# bench_reshard BIG-BYTES
	local t1 t2 bigb=$1
	mk() {	# mk NAME BYTES RECORD-BYTES
		rm -rf "$dir/$1"
		kds-create --segment-bytes 256M "$dir/$1"
		"$PY" - "$2" "$3" <<'PY' | kds-put --sync=never -k k "$dir/$1"
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
			t0=$EPOCHREALTIME
			kds-reshard "$dir/$1.copy" split 0 >/dev/null
			t1=$EPOCHREALTIME
			t=$(calc "$t1 - $t0")
			if [ -z "$b" ] || [ "$(calc "$t < $b")" = 1 ]; then b=$t; fi
		done
		echo "$b"
	}
	local avail
	avail=$(df -P -B1 "$dir" | awk 'NR == 2 { print $4 }')
	if [ "$avail" -lt $((bigb * 3 / 2)) ]; then
		bigb=$((avail / 4))
		NOTES+=("The split's large stream was cut to $((bigb / 1000000)) MB: $((avail / 1000000)) MB free on $fstype.")
	fi
	say "kds-reshard split, 1 MB and $((bigb / 1000000)) MB"
	mk r1m $((1024 * 1024)) 1024
	mk r1g "$bigb" $((1000 * 1000))
	t1=$(best_split r1m)
	t2=$(best_split r1g)
	copy r1g
	rss "split of a $(du -sh "$dir/r1g" | cut -f1) shard" kds-reshard "$dir/r1g.copy" split 0 >/dev/null
	rss "1 shard" kds-create "$dir/c1"
	rss "8 shards" kds-create -n 8 "$dir/c8"
	section "kds-reshard split, best of 3"
	row "a 1 MB shard" "" "" "" "$(ms "$t1")" "" ""
	row "a $(du -sh "$dir/r1g" | cut -f1) shard" "" "" "" \
	    "$(ms "$t2") ($(printf '%.2f' "$(calc "$t2 / $t1")")× the 1 MB)" "" ""
	rm -rf "$dir"/r1m* "$dir"/r1g* "$dir/c1" "$dir/c8"
}

# --- Peak RSS -------------------------------------------------------------
rss_rows() {
	local tool kib what
	section "peak RSS of each tool, the largest of its runs above ($rss_label)"
	if [ "$rss_how" = none ]; then
		row "not measured: /usr/bin/time is not GNU time, and no C compiler" "" "" "" "" "" ""
		return
	fi
	while IFS=$'\t' read -r tool kib what; do
		row "$tool ($what)" "" "" "" \
		    "$(awk -v k="$kib" 'BEGIN { printf "%.1f MiB", k / 1024 }')" \
		    "< 16 MiB" "$(met "$kib < 16384")"
	done < <(sort -t "$(printf '\t')" -k1,1 -k2,2nr "$dir/rss" | awk -F '\t' '!seen[$1]++')
}

bench_throughput 100 "$(sc 1000000 1000)"
bench_throughput 1000 "$(sc 200000 200)"
bench_producers "$(sc 1000000 1000)"
bench_group_commit "$(sc 200 20)" "$(sc 40 10)"
bench_seek
bench_follow_latency "$(sc 200 20)"
bench_expire "$(sc 1000 20)"
bench_reshard "$(sc 1000000000 10000000)"
bench_compress "$(sc 400000 2000)"
rm -f "$dir/in100"
rss_rows

# --- The table ------------------------------------------------------------
cpu=$(awk -F ': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
report() {
	echo "# kds benchmarks"
	echo
	echo "Written by \`make bench\` (tests/bench.sh): $started, $(uname -sr)," \
	    "$fstype at $base_dir, ${cpu:-unknown CPU}, $(nproc) cores, kds $commit."
	if [ "$scale" != 1 ]; then
		echo "Scaled down: BENCH_SCALE=$scale."
	fi
	echo "Throughput and seeks are the best of $runs and $seek_runs runs, on files in the page cache."
	echo
	echo "| benchmark | records/s | MB/s | of cat | figure | goal | met |"
	echo "|---|--:|--:|--:|---|---|---|"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "The kds-put goal is for --sync=never: cat syncs nothing either."
	echo "GNU cat copies a file to a file inside the kernel (copy_file_range(2)); dd shows what a read(2) and write(2) loop gets."
	echo "kds-get to a pipe is beside cat | cat, kds-get and kds-put to a file beside cat >file."
	echo "Rows with a figure of cat compare with the faster of two: a cat timed alongside them, run for run, and the section's first (on a shared VM, cat's own speed can change by half within minutes)."
	echo "MB are 10^6 bytes of record data, as in the input; MiB are 2^20 bytes."
	for n in "${NOTES[@]}"; do
		echo "$n"
	done
}
report >"$dir/report.md"
cat "$dir/report.md"
if [ -n "$out" ]; then
	cp "$dir/report.md" "$out"
	say "wrote $out"
fi
