#!/usr/bin/env bats
# 72-kill-loop: kill -9, hundreds of times, at random moments.  Producers
# running kds-put --sync=always -p, several at once: every record they
# acknowledged is read back, once, whole.  kds-reshard and kds-expire
# killed part-way: the stream opens and reads, and nothing acknowledged
# is lost.  Records check themselves: record N of run R is "R.N:", then
# a run of x's whose length L depends on both, then ":L"; a record cut
# short or glued to another does not parse.  The number of kills is that
# of make check-full; make check makes 1 in STEP of them (helper.bash's
# runs), and the counts the tests expect scale with it.

load helper

setup() {
	kds_setup
	fixed_clock
}

# gen RUN N: the N records of run RUN, one a line.
gen() {
	awk -v r="$1" -v n="$2" 'BEGIN {
		x = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		for (i = 1; i <= n; i++) {
			l = (i * 7 + r * 13) % 97
			printf "%d.%d:%s:%d\n", r, i, substr(x, 1, l), l
		}
	}'
}

# check OUT ACKS...: OUT ("SEQ DATA" lines, kds-get --format '%o %s\n')
# holds only whole records, each sequence number once; every complete
# line "SHARD SEQ" of each ACK file (ack.RUN: acks of run RUN, in input
# order) names the record of its rank in that run.  Prints the records
# stored and acknowledged.  CHECK_PY defines it as check(LINES, ACKS) for
# python3 -c: a loop that checks several reads does them in one python3.
read -r -d '' CHECK_PY <<'EOF' || true
import re, sys
rec = re.compile(r"^(\d+)\.(\d+):(x*):(\d+)$")


def check(out, acks):
    by_seq, seen = {}, set()
    for line in out:
        seq, data = line.rstrip("\n").split(" ", 1)
        m = rec.match(data)
        assert m, "torn or foreign record at %s: %r" % (seq, data[:80])
        r, i, x, l = int(m[1]), int(m[2]), m[3], int(m[4])
        assert len(x) == l == (i * 7 + r * 13) % 97, "bad record at %s: %r" % (seq, data[:80])
        assert seq not in by_seq, "sequence number %s twice" % seq
        assert (r, i) not in seen, "record %d.%d stored twice" % (r, i)
        by_seq[seq] = (r, i)
        seen.add((r, i))
    acked = 0
    for path in acks:
        r = int(path.rsplit(".", 1)[1])
        lines = open(path).read().split("\n")[:-1]	# a cut last line counts for nothing
        for k, line in enumerate(lines, 1):
            shard, seq = line.split()
            assert re.match(r"^shardId-\d{12}$", shard), "bad ack %r" % line
            assert by_seq.get(seq) == (r, k), \
                "run %d record %d acknowledged as %s, stored: %s" % (r, k, seq, by_seq.get(seq))
            acked += 1
    return len(by_seq), acked
EOF

check() {
	python3 -c "$CHECK_PY
print(*check(open(sys.argv[1]), sys.argv[2:]))" "$@"
}

# ms_sleep MS: sleep MS milliseconds.
ms_sleep() {
	sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"
}

# read_all STREAM OUT: kds-get, clean: exit 0, nothing on stderr.
read_all() {
	kds-get $E --format '%o %s\n' "$1" >"$2" 2>err || {
		echo "kds-get failed: $(cat err)" >&2
		return 1
	}
	[ ! -s err ] || { echo "kds-get: $(cat err)" >&2; return 1; }
}

# slot_loop SLOT PER N SPAN GROW: producers of N records, runs SLOT*1000
# + 1, ..., each killed after 0 to SPAN - 1 ms, until PER were killed and
# one producer (killed or not) acknowledged a record, or 5 PER were
# tried; ack.RUN, err.RUN and status.RUN of each.  SPAN starts as given
# and follows how long producers live meanwhile (other tests may be
# running: a window measured once is soon wrong); a kill widens it by
# GROW ms.
slot_loop() {
	local slot=$1 per=$2 n=$3 span=$4 grow=$5 kills=0 acked=0 k r pid st
	for ((k = 0; (kills < per || !acked) && k < 5 * per; k++)); do
		r=$((slot * 1000 + k + 1))
		gen "$r" "$n" >"$BATS_TEST_TMPDIR/in.$r"
		kds-put --sync=always -p s <"$BATS_TEST_TMPDIR/in.$r" >ack.$r 2>err.$r &
		pid=$!
		ms_sleep $((RANDOM % span))
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		st=$?
		echo $st >status.$r
		read -r _ <ack.$r && acked=1	# a whole line
		# the window follows the load of the moment: a producer that
		# ended before its kill shrinks it, a kill widens it a little
		if [ "$st" -eq 137 ]; then
			kills=$((kills + 1))
			span=$((span + grow))
		else
			span=$((span * 3 / 4 + 1))
		fi
	done
}

@test "kds-put --sync=always -p killed at random moments, again and again: every ack read back, once, whole" {
	no_leak_check
	mkstream s -n 3 --segment-bytes 64K
	# 200 kills in make check-full
	kills=$(runs 200) slots=4 n=1000
	per=$(((kills + slots - 1) / slots))
	# each slot starts, kills and waits for its producers one after the
	# other until it has killed $per; the slots run at once, so kills
	# land during other producers' writes too.  (In a bash of their own:
	# bats's per-command trap would triple the time of the loop.)
	# kills land from before main() to 2 ms past the time a whole producer
	# run takes here, the median of 3 (a sanitizer build starts slowly: a
	# fixed window would kill every one before its first ack; where fsync
	# is quick, a longer one would land most kills after the exit).  A
	# kill widens the window by 1 ms, by STEP ms when there are 1/STEP of
	# the kills: as much drift over a slot's loop.  A slot also goes on
	# until a producer of its own has acknowledged a record (they do so
	# near the end of a run): with a few kills a slot (make check-asan),
	# the window may not reach that far before the last.
	mkstream probe
	gen 0 "$n" >probe.in
	span=$(for i in 1 2 3; do
		t0=$(date +%s%N)
		kds-put --sync=always -p probe <probe.in >/dev/null
		echo $((($(date +%s%N) - t0) / 1000000 + 2))
	done | sort -n | sed -n 2p)
	export -f gen ms_sleep slot_loop
	for ((slot = 0; slot < slots; slot++)); do
		bash -c 'slot_loop "$@"' _ "$slot" "$per" "$n" "$span" "$STEP" &
	done
	wait
	killed=$(cat status.* | grep -c '^137$' || true)
	partial=$(wc -l ack.* | awk -v n="$n" '$2 != "total" && $1 < n' | wc -l)
	# a producer that was not killed ended well, and said nothing
	bad=$(grep -L -x -e 137 -e 0 status.* || true)
	[ -z "$bad" ] || { echo "exit status: $(head -n 3 $bad)" >&2; return 1; }
	for f in $(grep -l -x 0 status.* || true); do
		[ ! -s "err.${f#status.}" ] || { cat "err.${f#status.}" >&2; return 1; }
	done
	read_all s out
	res=$(check out ack.*)
	read -r stored acked _ <<<"$res"
	echo "# $killed of $(ls status.* | wc -l) producers killed (window from $span ms), $partial cut short; $stored records stored, $acked acknowledged" >&3
	[ "$killed" -ge "$kills" ]
	[ "$partial" -ge $((kills * 3 / 4)) ]
	[ "$acked" -gt 0 ]
	# the stream takes writes on every shard afterwards, and they read back
	gen 9999 300 >in
	run -0 --separate-stderr kds-put --sync=always -p s <in
	printf '%s\n' "${lines[@]}" >ack.9999
	[ "$(cut -d' ' -f1 ack.9999 | sort -u | wc -l)" -eq 3 ]
	read_all s out
	check out ack.* >/dev/null
	if have_xxhash; then
		python3 "$DECODE" --lax-index s >/dev/null
	fi
}

# open_shards STREAM: how many open shards kds-describe counts (and so
# the stream opens: it fails otherwise).
open_shards() {
	local j
	j=$(kds-describe -j "$1") || return 1
	[[ $j =~ \"OpenShardCount\":([0-9]+) ]] || { echo "no OpenShardCount: $j" >&2; return 1; }
	echo "${BASH_REMATCH[1]}"
}

# put_acked STREAM RUN N: N records of run RUN, acknowledged, into ack.RUN.
put_acked() {
	gen "$2" "$3" | kds-put --sync=always -p "$1" >ack.$2
}

@test "kds-reshard killed part-way again and again, producers writing: the stream opens, reads, loses nothing" {
	no_leak_check
	mkstream s -n 2 --segment-bytes 16K
	put_acked s 1 2000
	targets=(5 3 8 1 6 2 7 4)
	partial=0 r=1
	kills=$(runs 20)	# 20 in make check-full
	for ((k = 0; k < kills; k++)); do
		r=$((r + 1))
		gen "$r" 1500 >"$BATS_TEST_TMPDIR/in"
		kds-put --sync=always -p s <"$BATS_TEST_TMPDIR/in" >ack.$r 2>err.put &
		put=$!
		want=${targets[k % ${#targets[@]}]}
		kds-reshard s scale "$want" >made 2>err.reshard &
		pid=$!
		ms_sleep $((RANDOM % 30))
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" && st=0 || st=$?
		# the producer is not held up by a reshard that died holding locks
		wait "$put" || { echo "kill $k: kds-put: $(cat err.put)" >&2; return 1; }
		[ "$st" -eq 137 ] || [ "$st" -eq 0 ] ||
		    { echo "kill $k: kds-reshard: exit $st: $(cat err.reshard)" >&2; return 1; }
		open=$(open_shards s)
		[ "$open" -eq "$want" ] || partial=$((partial + 1))
		read_all s out
		check out ack.* >/dev/null ||
		    { echo "after kill $k (scale to $want)" >&2; return 1; }
	done
	echo "# $kills reshards killed at random, $partial of them part-way" >&3
	[ "$partial" -ge $((kills / 4)) ]
	# a reshard run to its end finishes what the killed ones left
	run -0 --separate-stderr kds-reshard s scale 4
	[ "$(open_shards s)" -eq 4 ]
	put_acked s 999 500
	read_all s out
	check out ack.* >/dev/null
	if have_xxhash; then
		python3 "$DECODE" --lax-index s >/dev/null
	fi
}

@test "kds-expire -a killed part-way again and again: every record in the stream or an archive, the new ones in the stream" {
	no_leak_check
	mkstream p -n 2 --segment-bytes 4096
	gen 1 3000 | put_at $((T + 100)) --sync=always -p p >ack.1
	gen 2 300 | put_at $((T + 20 * 3600)) --sync=always -p p >ack.2
	later=$((T + 26 * 3600))	# run 1 has expired, run 2 has not
	# kills land anywhere in the time a whole run takes, or, every other
	# time, at a call picked at random among the writes, syncs, renames,
	# unlinks and mkdirs of a whole run (strace)
	rm -rf s arch && cp -a p s && mkdir arch
	t0=$(date +%s%N)
	KDS_NOW=$later kds-expire -a arch s
	dur=$((($(date +%s%N) - t0) / 1000000 + 1))
	calls=write,pwrite64,fsync,fdatasync,rename,renameat,renameat2,unlinkat,mkdirat
	points=()
	if command -v strace >/dev/null; then
		rm -rf s arch && cp -a p s && mkdir arch
		strace -f -o trace -e trace=$calls env KDS_NOW=$later kds-expire -a arch s
		# "CALL:N" for the Nth call of each kind
		points=($(sed -n 's/^[0-9]* *\([a-z0-9]*\)(.*/\1/p' trace |
		    awk '{ print $1 ":" ++n[$1] }'))
	fi
	partial=0
	kills=$(runs 20)	# 20 in make check-full
	for ((k = 0; k < kills; k++)); do
		rm -rf s arch && cp -a p s && mkdir arch
		if ((k % 2 == 1 && ${#points[@]} > 0)); then
			pt=${points[RANDOM % ${#points[@]}]}
			st=0
			strace -f -o /dev/null -e trace="${pt%:*}" \
			    -e inject="${pt%:*}":signal=KILL:when="${pt#*:}" \
			    env KDS_NOW=$later kds-expire -a arch s 2>err || st=$?
		else
			KDS_NOW=$later kds-expire -a arch s 2>err &
			pid=$!
			ms_sleep $((RANDOM % dur))
			kill -9 "$pid" 2>/dev/null || true
			wait "$pid" && st=0 || st=$?
		fi
		[ "$st" -eq 137 ] || [ "$st" -eq 0 ] ||
		    { echo "kill $k: exit $st: $(cat err)" >&2; return 1; }
		# the stream opens and reads (checked below, with the rerun's
		# reads, in one python3)
		KDS_NOW=$((T + 3000)) read_all s out
		KDS_NOW=$later read_all s new
		mapfile -t files < <(find arch -type f)
		archives=()
		for f in "${files[@]}"; do
			[[ $f != *.tar.zst ]] || archives+=("$f")
		done
		: >archived
		if ((${#archives[@]})); then
			kds-get --archive --format '%o %s\n' "${archives[@]}" >archived 2>err ||
			    { echo "kill $k: archive: $(cat err)" >&2; return 1; }
		fi
		# and a rerun finishes
		KDS_NOW=$later kds-expire -a arch s
		KDS_NOW=$later read_all s new2
		mapfile -t archives < <(find arch -name '*.tar.zst')
		kds-get --archive --format '%o %s\n' "${archives[@]}" >old
		n1=$(python3 -c "$CHECK_PY"'
stream, archived, new, new2, old = (open(p).readlines() for p in sys.argv[1:6])
acks = sys.argv[6:]


def count(lines, run):
    return sum(1 for line in lines if line.split(" ", 1)[1].startswith("%d." % run))


# with the clock back, every record of run 1 is in the stream or an
# archive (once: one in both counts once), and run 2 in the stream
check(sorted(set(stream + archived)), acks)
assert count(new, 2) == len(new) == 300, "stream after the kill: %d records" % len(new)
# after the rerun: run 1 gone from the stream, each record of it in
# exactly one archive (check: none twice across stream and archives)
assert count(new2, 2) == len(new2) == 300, "stream after the rerun: %d records" % len(new2)
assert count(old, 1) == len(old) == 3000, "archives after the rerun: %d records" % len(old)
check(new2 + old, acks)
print(count(stream, 1))' out archived new new2 old ack.1 ack.2) ||
		    { echo "after kill $k" >&2; return 1; }
		# part-way: begun (an archive, whole or not, or a segment
		# gone) and not done (a record of run 1 left)
		if [ "$n1" -gt 0 ] && { [ "$n1" -lt 3000 ] || ((${#files[@]})); }; then
			partial=$((partial + 1))
		fi
		[ -z "$(find arch s -name '*.tmp')" ]
	done
	echo "# $kills runs of kds-expire killed at random in $dur ms or at one of ${#points[@]} calls, $partial of them part-way" >&3
	[ "$partial" -ge $((kills * 8 / 20)) ]
}

@test "a merge under a pending batch: each ack names its own record" {
	mkstream s -n 2
	mkfifo fifo
	for ((try = 1; try <= 5; try++)); do
		rm -rf s && mkstream s -n 2
		kds-put -p s <fifo >ack.$try &
		pid=$!
		exec 5>fifo
		# ten records, round-robin over shards 0 and 1, wait in one
		# batch (kds-put flushes 50 ms after the first); the merge
		# closes both shards under them
		gen "$try" 10 >&5
		kds-reshard s merge 0 1 >/dev/null
		exec 5>&-
		wait "$pid"
		# the flush came after the merge: every ack in shard 2
		[ "$(cut -d' ' -f1 ack.$try | sort -u)" = shardId-000000000002 ] && break
	done
	[ "$try" -le 5 ] || skip "the merge never came before the flush"
	read_all s out
	check out ack.$try >/dev/null
}
