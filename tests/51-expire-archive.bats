#!/usr/bin/env bats
# 51-expire-archive: kds-expire -a writes complete tar.zst archives named
# as Firehose names its objects, before any segment in them goes; a crash
# at any point leaves every record in the stream or an archive exactly
# once; kds-get --archive reads them back as a live stream reads.

load helper

H=3600

setup() {
	kds_setup
	export CREATE_NOW=$T
	mkdir arch
}

teardown() {
	[ -s "$BATS_TEST_TMPDIR/pids" ] && xargs -r kill -9 <"$BATS_TEST_TMPDIR/pids" 2>/dev/null
	mountpoint -q "$BATS_TEST_TMPDIR/w/fs" 2>/dev/null && umount "$BATS_TEST_TMPDIR/w/fs"
	return 0
}

at() {
	local t=$1
	shift
	KDS_NOW=$((T + t)) "$@"
}

# hourly STREAM HOURS N [kds-put options]: N records "h<H>-<i>" put at
# T + h hours + 10 s, for h in 0 .. HOURS-1.
hourly() {
	local s=$1 hours=$2 n=$3 h
	shift 3
	for ((h = 0; h < hours; h++)); do
		seq -f "h$h-%g" 1 "$n" | at $((h * H + 10)) kds-put "$@" "$s" || return 1
	done
}

# Under strace, LeakSanitizer cannot run (make check-asan): "$NOLEAK strace".
NOLEAK="env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

state() {
	(cd "$1" && find . -type f | sort | xargs md5sum)
}

# records STREAM ARCHDIR: "shard seq data" of every record left in the
# stream (read at T, so that none is past the retention) and in every
# archive under ARCHDIR, sorted.
records() {
	local f
	{
		KDS_NOW=$T kds-get $E --format '%p %o %s\n' "$1"
		f=$(find "$2" -name '*.tar.zst' | sort)
		[ -z "$f" ] || kds-get --archive --format '%p %o %s\n' $f
	} | sort
}

# 2025-11-28T10 is T's hour.
HOUR_DIR=2025/11/28

@test "archives: one per shard and hour, named by shard and sequence range, then removal" {
	mkstream s -r 1h -n 2 --segment-bytes 4096
	hourly s 3 200
	records s /dev/null >before
	run -0 --separate-stderr at $((2 * H + 1800)) kds-expire -v -a arch s
	[ -z "$stderr" ]
	# hours 10 and 11 of both shards: the archives and their names
	(cd arch && find . -type f | sort) >files
	cat files
	[ "$(wc -l <files)" -eq 4 ]
	grep -q "^./s/$HOUR_DIR/10/shardId-000000000000-100000000000000000001-" files
	grep -q "^./s/$HOUR_DIR/11/shardId-000000000001-2000000000000000001" files
	! grep -q '\.tmp$' files
	# every line of -v names an archive that exists or a segment gone
	for l in "${lines[@]}"; do
		case $l in
		"s: archived "*" to "*) [ -f "${l##* to }" ] ;;
		"s: removed shardId-"*) p=${l#s: removed }; [ ! -e "s/${p%% *}" ] ;;
		*) echo "unexpected: $l" >&2; return 1 ;;
		esac
	done
	# an archive's name is the range of the records in it
	for f in $(find arch -name '*.tar.zst'); do
		n=$(basename "$f" .tar.zst)
		first=$(kds-get --archive --format '%o\n' "$f" | head -n 1)
		last=$(kds-get --archive --format '%o\n' "$f" | tail -n 1)
		[ "$n" = "$(cut -d- -f1-2 <<<"$n")-$first-$last" ]
	done
	# nothing lost, nothing twice
	records s arch | same before -
	python3 "$DECODE" s >/dev/null
}

@test "the archives open with bsdtar and GNU tar, and hold the segments byte for byte" {
	command -v bsdtar >/dev/null || skip "no bsdtar"
	command -v zstd >/dev/null || skip "no zstd (GNU tar needs it)"
	mkstream s -r 1h --segment-bytes 4096
	hourly s 2 150
	cp -a s orig
	at $((2 * H + 1800)) kds-expire -a arch s
	f=$(find arch -name '*.tar.zst' | sort)
	[ -n "$f" ]
	mkdir x1 x2
	for a in $f; do
		bsdtar -xf "$a" -C x1
		tar -xf "$a" -C x2
		bsdtar -tvf "$a" | grep -q '^-rw-r--r-- '
	done
	n=0
	for seg in x1/s/shardId-000000000000/*.seg; do
		cmp "$seg" "orig/shardId-000000000000/$(basename "$seg")"
		cmp "$seg" "x2/s/shardId-000000000000/$(basename "$seg")"
		[ ! -e "s/shardId-000000000000/$(basename "$seg")" ]
		n=$((n + 1))
	done
	[ "$n" -ge 2 ]
}

@test "round trip: kds-get --archive prints byte for byte what kds-get printed before" {
	mkstream s -r 1h -n 3 --segment-bytes 4096
	hourly s 3 300 -k k
	hourly s 2 100
	for o in "-o jsonl" "-o lines" "-o raw" "--format %t|%p|%o|%T|%k|%K|%S|%h|%s\n"; do
		KDS_NOW=$T kds-get $E $o s >"before.${o//[^a-z]/}"
	done
	at $((5 * H)) kds-expire -a arch s
	[ -z "$(find s -name '*.seg' -size +48c)" ]
	f=$(find arch -name '*.tar.zst' | sort)
	for o in "-o jsonl" "-o lines" "-o raw" "--format %t|%p|%o|%T|%k|%K|%S|%h|%s\n"; do
		kds-get --archive $o $f | same "before.${o//[^a-z]/}" -
	done
	# the operands in any order, one of them twice: the same
	kds-get --archive -o jsonl $(sort -r <<<"$f") $(head -n 1 <<<"$f") |
	    same before.ojsonl -
	# replay into another stream
	mkstream r -n 2
	kds-get --archive -o jsonl $f | at $((6 * H)) kds-put -i jsonl r
	KDS_NOW=$((T + 6 * H)) kds-get $E --format '%k %s\n' r | sort >replayed
	KDS_NOW=$T kds-get $E --format '%k %s\n' s 2>/dev/null | sort >/dev/null
	kds-get --archive --format '%k %s\n' $f | sort | same - replayed
}

@test "kds-get --archive takes the options of a live stream" {
	# live reads at T + 1h + 100 s see every record: retention 2h
	mkstream s -r 2h -n 2 --segment-bytes 4096
	hourly s 2 200
	seq3=$(KDS_NOW=$T kds-get $E -s 1 --format '%o\n' s | sed -n 37p)
	opts=("-s 0" "-s shardId-000000000001 -n 7" "-n 0" "-i LATEST"
	    "--sequence $seq3" "-i AFTER_SEQUENCE_NUMBER --sequence $seq3"
	    "--timestamp $((T + H))" "-i AT_TIMESTAMP --timestamp 2025-11-28T10:30:00Z"
	    "-0" "-s 0 -s 1 -s 0")
	for o in "${opts[@]}"; do
		KDS_NOW=$((T + H + 100)) kds-get $E $o --format '%p %o %T %s\n' s >"live.$o"
	done
	at $((4 * H)) kds-expire -a arch s
	f=$(find arch -name '*.tar.zst' | sort)
	for o in "${opts[@]}"; do
		kds-get --archive $o --format '%p %o %T %s\n' $f | same "live.$o" -
	done
	[ -s "live.-s 0" ]
	[ ! -s "live.-i LATEST" ]
}

@test "kds-get --archive: bad files and absent shards, exit 1 with the file named" {
	mkstream s -r 1h
	hourly s 2 20
	at $((3 * H)) kds-expire -a arch s
	a=$(find arch -name '*.tar.zst' | sort | head -n 1)
	run -1 --separate-stderr kds-get --archive nosuch.tar.zst
	stderr_is "kds-get: nosuch.tar.zst: No such file or directory"
	mkdir -p junk && echo x >junk/file && bsdtar -cf junk.tar -C junk file
	run -1 --separate-stderr kds-get --archive junk.tar
	stderr_is "kds-get: junk.tar: file: not a segment of a kds stream"
	run -1 --separate-stderr kds-get --archive -s 3 "$a"
	stderr_is "kds-get: shardId-000000000003: no such shard in the archives"
	run -2 --separate-stderr kds-get --archive -s x "$a"
	stderr_is "kds-get: bad shard id 'x'"
	run -2 --separate-stderr kds-get --archive
	has_usage kds-get
	# a damaged record: the member and the offset
	bsdtar -xf "$a"
	seg=$(ls s/shardId-000000000000/*.seg | head -n 1)
	flip "$seg" 50
	bsdtar --zstd -cf bad.tar.zst "$seg"
	run -1 --separate-stderr kds-get --archive bad.tar.zst
	stderr_is "kds-get: bad.tar.zst: $seg: offset 48: bad checksum"
	# a file that is no archive at all: libarchive's words for it, not
	# the strerror of the errno it files them under (EILSEQ)
	echo hello >text
	run -1 --separate-stderr kds-get --archive text
	stderr_is "kds-get: text: Unrecognized archive format"
	[ -z "$output" ]
}

# A tar without a member (bsdtar writes its end blocks alone): nothing to
# learn the stream and shard from, refused and named.
@test "kds-get --archive: an empty archive, exit 1 with the file named" {
	mkstream s -r 1h
	hourly s 2 20
	at $((3 * H)) kds-expire -a arch s
	a=$(find arch -name '*.tar.zst' | sort | head -n 1)
	bsdtar -cf empty.tar --files-from /dev/null
	[ -s empty.tar ]
	run -1 --separate-stderr kds-get --archive empty.tar
	stderr_is "kds-get: empty.tar: empty archive"
	[ -z "$output" ]
	# beside a good archive, too: nothing printed of either
	run -1 --separate-stderr kds-get --archive "$a" empty.tar
	stderr_is "kds-get: empty.tar: empty archive"
	[ -z "$output" ]
}

@test "kds-get --archive: a sequence number of an absent shard, a mixed archive, a full stdout" {
	mkstream s -r 1h -n 2
	hourly s 2 20
	at $((3 * H)) kds-expire -a arch s
	a=$(find arch -name 'shardId-000000000000-*.tar.zst' | sort | head -n 1)
	b=$(find arch -name 'shardId-000000000001-*.tar.zst' | sort | head -n 1)
	run -1 --separate-stderr kds-get --archive --sequence "$(seq_of 3 1)" "$a"
	stderr_is "kds-get: sequence number $(seq_of 3 1): no shard shardId-000000000003 in the archives"
	[ -z "$output" ]
	# an archive holds the segments of one shard: a member of another
	# after the first is refused, named
	mkdir x && bsdtar -xf "$a" -C x && bsdtar -xf "$b" -C x
	s0=$(cd x && ls s/shardId-000000000000/*.seg | head -n 1)
	s1=$(cd x && ls s/shardId-000000000001/*.seg | head -n 1)
	bsdtar --zstd -cf mixed.tar.zst -C x "$s0" "$s1"
	run -1 --separate-stderr kds-get --archive mixed.tar.zst
	stderr_is "kds-get: mixed.tar.zst: $s1: another shard than the archive's first member"
	# stdout full: the stream the archive is of, named
	run -1 --separate-stderr bash -c "kds-get --archive '$a' >/dev/full"
	stderr_is "kds-get: s: stdout: No space left on device"
}

@test "kds-get --archive with -F, --idle-timeout or -c: a usage error, exit 2" {
	mkstream s -r 1h
	hourly s 2 20
	at $((3 * H)) kds-expire -a arch s
	a=$(find arch -name '*.tar.zst' | sort | head -n 1)
	for o in -F "--idle-timeout 1s" "-c c"; do
		run -2 --separate-stderr kds-get --archive $o "$a"
		stderr_is "kds-get: --archive does not go with -F or -c" ||
		    { echo "($o)" >&2; return 1; }
		[ -z "$output" ]
	done
	[ ! -e s/consumers/c ]
}

# crash_points CALLS: kill kds-expire -a at the 1st, 2nd, ... call of
# CALLS, rerun it, and check that every record is in the stream or an
# archive exactly once, with no .tmp left and a well-formed stream.  make
# check-full visits every call, make check every STEP-th from call FIRST
# (1 + PHASE modulo the number of calls: there may be fewer than STEP).
crash_points() {
	local calls=$1 total n nlast i=0 out rc f archives tmp big
	# a run that is not killed completes, and counts the points
	rm -rf s arch && cp -a base/s base/arch .
	KDS_NOW=$((T + 4 * H)) strace -f -o trace -e trace="$calls" \
	    kds-expire -a arch s >/dev/null 2>&1 ||
	    { echo "$calls: exit $? without a crash" >&2; return 1; }
	total=$(calls_made trace)
	((total >= 1 && total <= 80)) || { echo "$calls: $total calls" >&2; return 1; }
	nlast=$((1 + PHASE % total + (total - 1 - PHASE % total) / STEP * STEP))
	echo "# $calls: $total calls, crash points $((1 + PHASE % total)) to $nlast, every $STEP" >&3
	for ((n = 1 + PHASE % total; n <= total; n += STEP, i++)); do
		rm -rf s arch && cp -a base/s base/arch .
		rc=0
		KDS_NOW=$((T + 4 * H)) strace -f -o /dev/null -e trace="$calls" \
		    -e inject="$calls":signal=KILL:when=$n \
		    kds-expire -a arch s >/dev/null 2>&1 || rc=$?
		[ "$rc" -eq 137 ] || { echo "$calls $n: exit $rc" >&2; return 1; }
		out=$(at $((4 * H)) kds-expire -a arch s 2>&1) ||
		    { echo "$calls $n: rerun: $out" >&2; return 1; }
		# one find for the archives, any .tmp among them, and any
		# segment left with records in it
		archives= tmp= big=
		for f in $(find arch s \( -path 'arch/*' \( -name '*.tar.zst' -o -name '*.tmp' \) \) -o \
		    \( -path 's/*' -name '*.seg' -size +48c \)); do
			case $f in
			*.tar.zst) archives+=" $f" ;;
			*.tmp) tmp+=" $f" ;;
			*) big+=" $f" ;;
			esac
		done
		out=$({
			KDS_NOW=$T kds-get $E --format '%p %o %s\n' s
			[ -z "$archives" ] || kds-get --archive --format '%p %o %s\n' $archives
		} | sort)
		[ "$out" = "$wanted" ] ||
		    { same want <(echo "$out"); echo "$calls $n: records differ" >&2; return 1; }
		[ -z "$tmp" ] || { echo "$calls $n: .tmp left:$tmp" >&2; return 1; }
		# the independent decoder, the most costly check, sees every
		# 3rd rerun's stream and the last
		if ((i % 3 == 0 || n == nlast)); then
			python3 "$DECODE" s >/dev/null || { echo "$calls $n: decoder" >&2; return 1; }
		fi
		[ -z "$big" ] || { echo "$calls $n: not expired:$big" >&2; return 1; }
	done
}

@test "killed at every write, sync, rename and unlink, then rerun: each record exactly once" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	mkstream tmpl -r 1h -n 2 --segment-bytes 4096
	hourly tmpl 3 100
	records tmpl /dev/null >want
	wanted=$(<want)
	# what each run starts from: the stream and an empty archive directory
	mkdir -p base/arch && cp -a tmpl base/s
	crash_points write,writev
	crash_points fsync,fdatasync
	crash_points rename,renameat,renameat2
	crash_points unlink,unlinkat
	crash_points mkdir,mkdirat,pwrite64
}

@test "kill -9 while archiving, then rerun: each record exactly once" {
	mkstream s -r 1h
	head -c 12000000 /dev/urandom | base64 -w 200 | at 10 kds-put -k k s
	records s /dev/null >want
	at $((2 * H)) kds-expire -a arch s &
	pid=$!
	echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
	for ((k = 0; k < 1000; k++)); do
		[ -n "$(find arch -name '*.tmp' 2>/dev/null)" ] && break
		sleep 0.005
	done
	kill -9 "$pid"
	wait "$pid" || true
	run -0 --separate-stderr at $((2 * H)) kds-expire -v -a arch s
	records s arch | same want -
	[ -z "$(find arch -name '*.tmp')" ]
	[ "$(find arch -name '*.tar.zst' | wc -l)" -eq 1 ]
}

@test "a rerun after a crash between archive and removal only removes" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s -r 1h --segment-bytes 4096
	hourly s 2 100
	records s /dev/null >want
	run -137 $NOLEAK strace -f -o /dev/null -e trace=unlink,unlinkat -e inject=unlink,unlinkat:signal=KILL:when=1 \
	    env KDS_NOW=$((T + 2 * H + 60)) kds-expire -a arch s
	a=$(find arch -name '*.tar.zst')
	[ "$(wc -l <<<"$a")" -eq 1 ]
	touch -d @0 "$a"
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -v -a arch s
	[ "${lines[0]}" = "s: shardId-000000000000/100000000000000000001.seg: already in $a" ]
	[[ ${lines[-1]} == "s: removed shardId-000000000000/"* ]]
	! grep -q archived <<<"$output"
	# the archive was not rewritten
	[ "$(stat -c %Y "$a")" -eq 0 ]
	records s arch | same want -
}

@test "an archive of that name from another stream is never taken for ours" {
	mkstream s -r 1h
	mkdir other
	mkstream other/s -r 1h
	hourly s 1 10
	hourly other/s 1 10
	at $((2 * H)) kds-expire -a arch other/s
	before=$(state s)
	run -1 --separate-stderr at $((2 * H)) kds-expire -a arch s
	a=$(find arch -name '*.tar.zst')
	stderr_is "kds-expire: s: $a: File exists"
	[ "$(state s)" = "$before" ]
	[ -z "$(find arch -name '*.tmp')" ]
}

@test "an unwritable archive directory: exit 1, the stream untouched (as nobody)" {
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	runuser -u nobody -- test -x "$KDS_BUILD/kds-expire" || skip "nobody cannot run kds-expire"
	d=$(mktemp -d /tmp/kds-perm.XXXXXX)
	chmod 755 "$d"
	KDS_NOW=$T kds-create -r 1h "$d/s"
	seq 10 | at 10 kds-put "$d/s"
	chown -R nobody "$d/s"
	mkdir "$d/arch"
	before=$(state "$d/s")
	run -1 --separate-stderr runuser -u nobody -- env KDS_NOW=$((T + 2 * H)) \
	    "$KDS_BUILD/kds-expire" -a "$d/arch" "$d/s"
	after=$(state "$d/s")
	rm -rf "$d"
	stderr_is "kds-expire: $d/s: $d/arch/s: mkdir: Permission denied"
	[ "$after" = "$before" ]
}

@test "an archive path that is not a directory: exit 1, the stream untouched" {
	mkstream s -r 1h
	hourly s 1 10
	touch arch/s
	before=$(state s)
	run -1 --separate-stderr at $((2 * H)) kds-expire -a arch s
	stderr_is "kds-expire: s: arch/s: Not a directory"
	[ "$(state s)" = "$before" ]
}

@test "a full disk under the archives: exit 1, the stream untouched, no .tmp left" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount tmpfs"
	mkdir fs
	mount -t tmpfs -o size=256k none fs 2>/dev/null || skip "cannot mount tmpfs"
	mkstream s -r 1h
	head -c 2000000 /dev/urandom | base64 -w 100 | at 10 kds-put s
	before=$(state s)
	run -1 --separate-stderr at $((2 * H)) kds-expire -a fs s
	[[ $stderr == "kds-expire: s: fs/s/$HOUR_DIR/10/shardId-000000000000-100000000000000000001-"*".tar.zst.tmp: write: No space left on device" ]]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[ "$(state s)" = "$before" ]
	[ -z "$(find fs -name '*.tmp')" ]
	umount fs
}

# An I/O error at the archive's fsync, or at the sync of its directory
# after the rename: exit 1, the archive and the call named.  Before the
# rename nothing is left but the stream as it was; after it, the archive is
# whole and its segments are still in the stream, and a rerun only
# removes them: each record once throughout.
@test "an I/O error syncing an archive or its directory: exit 1, file and call named, each record once" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s -r 1h
	hourly s 2 20
	records s arch >want
	before=$(state s)
	a=arch/s/$HOUR_DIR/10/shardId-000000000000-$(seq_of 0 1)-$(seq_of 0 20).tar.zst
	run -1 --separate-stderr at $((3 * H)) strace -f -o /dev/null -P "$PWD/$a.tmp" \
	    -e trace=fsync -e inject=fsync:error=EIO kds-expire -a arch s
	stderr_is "kds-expire: s: $a.tmp: fsync: Input/output error"
	[ "$(state s)" = "$before" ]
	[ -z "$(find arch -type f)" ]
	# the sync of the archive's directory, after the rename
	run -1 --separate-stderr at $((3 * H)) strace -f -o /dev/null -P "$PWD/${a%/*}" \
	    -e trace=fsync -e inject=fsync:error=EIO:when=1 kds-expire -a arch s
	stderr_is "kds-expire: s: $a: fsync: Input/output error"
	[ "$(state s)" = "$before" ]
	[ "$(find arch -type f)" = "$a" ]
	run -0 --separate-stderr at $((3 * H)) kds-expire -a arch s
	records s arch | same want -
	[ "$(find arch -name '*.tar.zst' | wc -l)" -eq 2 ]
	[ -z "$(find arch -name '*.tmp')" ]
}

# The rename of NAME.tar.zst.tmp into place failing otherwise than
# "File exists" (another stream's archive: that message is the name
# alone) says which call failed, as a segment's rename does.
@test "an I/O error renaming an archive into place: exit 1, file and 'rename' named, stream untouched" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s -r 1h
	hourly s 2 20
	before=$(state s)
	a=arch/s/$HOUR_DIR/10/shardId-000000000000-$(seq_of 0 1)-$(seq_of 0 20).tar.zst
	run -1 --separate-stderr at $((3 * H)) strace -f -o /dev/null -e trace=renameat2 \
	    -e inject=renameat2:error=EIO:when=1 kds-expire -a arch s
	stderr_is "kds-expire: s: $a: rename: Input/output error"
	[ "$(state s)" = "$before" ]
	[ -z "$(find arch -type f)" ]
}

@test "a progress line on a terminal when archiving is long; none otherwise" {
	command -v script >/dev/null || skip "no script(1)"
	command -v strace >/dev/null || skip "no strace"
	mkstream s -r 1h
	head -c 3000000 /dev/urandom | base64 -w 100 | at 10 kds-put s
	cp -a s s2
	mkdir arch2
	# each read of a segment slowed down: the run takes a few seconds,
	# and the one without a terminal runs meanwhile
	slow="$NOLEAK strace -f -o /dev/null -e trace=pread64 -e inject=pread64:delay_exit=200000"
	$slow env KDS_NOW=$((T + 2 * H)) kds-expire -a arch2 s2 >out2 2>err2 &
	pid=$!
	echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
	script -qec "$slow env KDS_NOW=$((T + 2 * H)) $KDS_BUILD/kds-expire -a arch s" /dev/null >tty
	grep -q 'kds-expire: s: archived [0-9.]* of [0-9.]* MiB' tty
	[ -z "$(find s -name '*.seg' -size +48c)" ]
	wait "$pid"
	[ ! -s err2 ]
	[ ! -s out2 ]
}

@test "producers, readers and kds-expire -a at once: every record once, stream or archive" {
	mkstream s -r 2s --segment-bytes 4096 -n 2
	(for ((k = 1; k <= 30; k++)); do
		seq -f "$k-%g" 1 50 | kds-put -p s || exit 1
		sleep 0.05
	done) >acks 2>put.err &
	producer=$!
	echo "$producer" >>"$BATS_TEST_TMPDIR/pids"
	(while kill -0 "$producer" 2>/dev/null; do
		kds-get $E s >/dev/null || exit 1
	done) 2>get.err &
	reader=$!
	echo "$reader" >>"$BATS_TEST_TMPDIR/pids"
	while kill -0 "$producer" 2>/dev/null; do
		kds-expire -a arch s || exit 1
	done 2>expire.err
	wait "$producer"
	wait "$reader"
	# and once more ten seconds on, when every record has expired
	KDS_NOW=$(($(date +%s) + 10)) kds-expire -a arch s
	[ -z "$(find s -name '*.seg' -size +48c)" ]
	[ ! -s put.err ]
	[ ! -s get.err ]
	[ ! -s expire.err ]
	[ -n "$(find arch -name '*.tar.zst')" ]
	# every acknowledged record, in the stream (read with the clock put
	# back) or in an archive, exactly once
	sort acks >want
	{
		KDS_NOW=$T kds-get $E --format '%p %o\n' s
		kds-get --archive --format '%p %o\n' $(find arch -name '*.tar.zst')
	} | sort | same want -
}

@test "a closed shard's segments are archived before it leaves the shard table" {
	have_xxhash || skip "no libxxhash.so.0"
	mkstream s -r 1h -n 2
	hourly s 1 10
	KDS_NOW=$T kds-create -n 3 scratch
	cp -a scratch/shardId-000000000002 s/
	python3 - s <<'EOF'
import ctypes, struct, sys
stream = sys.argv[1]
f = ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed
f.restype = ctypes.c_uint64
f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
out = []
for l in open(stream + "/meta").read().splitlines()[:-1]:
    p = l.split(" ")
    if p[0] == "next-shard":
        l = "next-shard 3"
    if p[0] == "shard" and p[1] == "shardId-000000000001":
        child = "shard shardId-000000000002 open shardId-000000000001 - %s %s 300000000000000000001 -" % (p[5], p[6])
        p[2], p[8] = "closed", "200000000000000000005"
        l = " ".join(p)
    out.append(l)
out.append(child)
body = ("\n".join(out) + "\n").encode()
open(stream + "/meta", "wb").write(body + b"checksum %016x\n" % f(body, len(body), 0))
EOF
	records s /dev/null >want
	run -0 --separate-stderr at $((2 * H)) kds-expire -v -a arch s
	[ "${lines[-1]}" = "s: removed the closed shard shardId-000000000001" ]
	[ ! -e s/shardId-000000000001 ]
	[ -f "arch/s/$HOUR_DIR/10/shardId-000000000001-200000000000000000001-200000000000000000005.tar.zst" ]
	records s arch | same want -
}
