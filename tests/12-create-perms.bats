#!/usr/bin/env bats
# 12-create-perms: the modes of everything the tools create
# (kds-stream(5), PERMISSIONS).  Under any umask, nothing in a stream is
# writable by others; modes are 0664 and 0775 less the umask.  A stream
# made with kds-create --group is shared by the group: its directories
# have the group and the set-group-ID bit, its files are group-readable
# and group-writable whatever the umask; two users of the group, run with
# runuser, write, read, reshard and expire each other's files.

load helper

setup() {
	kds_setup
	fixed_clock
}

# The temporary users and group of the two-user test, removed however the
# test ends.
teardown() {
	if [ -n "${KDS_USERS-}" ]; then
		for u in $KDS_USERS; do
			userdel "$u" >/dev/null 2>&1 || true
		done
	fi
	[ -z "${KDS_GROUP-}" ] || groupdel "$KDS_GROUP" >/dev/null 2>&1 || true
	[ -z "${KDS_SHARED-}" ] || rm -rf "$KDS_SHARED"
	return 0
}

# work STREAM: everything a stream's life creates: segments rolled, index
# entries, a consumer with its start, checkpoint, lease and worker files,
# a reshard's children, kds-expire's seal of a last segment, and archives
# under ./arch.
work() {
	local s=$1
	seq -f 'rec-%04.0f-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' 1 2000 |
	    put_at $((T + 100)) -k k "$s"
	kds-get -c etl -n 10 "$s" >/dev/null
	kds-reshard "$s" split 0 >/dev/null
	seq 1 100 | put_at $((T + 200)) "$s"
	mkdir -p -m 755 arch
	KDS_NOW=$((T + 30 * 3600)) kds-expire -a arch "$s"
	seq 1 10 | put_at $((T + 30 * 3600)) "$s"
	kds-get -c etl "$s" >/dev/null
}

# modes_are DIR FILEMODE DIRMODE: every file under DIR has FILEMODE and
# every directory DIRMODE (octal, as find %m prints them).
modes_are() {
	local bad
	bad=$(find "$1" ${MINDEPTH-} \( -type f ! -perm "$2" \) -o \( -type d ! -perm "$3" \) \
	    -printf '%m %p\n')
	[ -z "$bad" ] || {
		echo "want files $2, directories $3; these differ:" >&2
		echo "$bad" | head >&2
		return 1
	}
}

@test "umask 000: nothing in a stream is writable by others" {
	umask 000
	mkstream s -n 2 --segment-bytes 4096
	work s
	[ -z "$(find s arch -mindepth 1 -perm -o+w -printf '%m %p\n')" ]
	modes_are s 664 775
	MINDEPTH=-mindepth\ 1 modes_are arch 664 775
	[ "$(find s/consumers/etl -name '*.checkpoint' | wc -l)" -ge 2 ]
}

@test "umask 022, 027 and 077: modes follow it" {
	for m in 022:644:755 027:640:750 077:600:700; do
		rm -rf s arch
		umask "${m%%:*}"
		mkstream s -n 2 --segment-bytes 4096
		work s
		f=${m#*:}
		modes_are s "${f%:*}" "${m##*:}" || { echo "umask ${m%%:*}" >&2; return 1; }
		MINDEPTH=-mindepth\ 1 modes_are arch "${f%:*}" "${m##*:}"
	done
}

# group_one: g, the name of group 1 (daemon, on Debian), which root may
# give a stream; skip where that cannot be.
group_one() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to give a stream any group"
	g=$(getent group 1 | cut -d: -f1)
	[ -n "$g" ] || skip "no group 1"
}

@test "kds-create --group: the group, set-group-ID directories, g+rw files whatever the umask" {
	group_one
	for m in 022:664:2775 077:660:2770 000:664:2775 027:660:2770; do
		rm -rf s arch
		umask "${m%%:*}"
		run -0 --separate-stderr kds-create --group "$g" -n 2 --segment-bytes 4096 s
		[ -z "$stderr" ]
		work s
		f=${m#*:}
		modes_are s "${f%:*}" "${m##*:}" || { echo "umask ${m%%:*}" >&2; return 1; }
		[ -z "$(find s ! -group "$g")" ]
		[ -z "$(find s -perm -o+w)" ]
	done
	# by number, as chgrp takes it
	rm -rf s
	run -0 kds-create --group 1 s
	[ "$(stat -c %g:%a s)" = 1:2770 ]
}

@test "kds-create without --group under a set-group-ID directory: not shared" {
	mkdir -m 2775 d
	umask 077
	mkstream d/s
	[ "$(stat -c %a d/s)" = 700 ]
	echo x | kds-put -k k d/s
	modes_are d/s 600 700
}

@test "kds-create --group: unknown group, exit 2; a group not one's own, exit 1; nothing made" {
	run -2 --separate-stderr kds-create --group no-such-group-kds s
	stderr_is "kds-create: bad group 'no-such-group-kds': no such group"
	run -2 --separate-stderr kds-create --group 4294967295 s
	stderr_is "kds-create: bad group '4294967295': no such group"
	run -2 --separate-stderr kds-create --group $'a\nb' s
	stderr_is "kds-create: bad group 'a\\nb': no such group"
	[ -z "$(ls -A)" ]
	[ "$(id -u)" -eq 0 ] || skip "needs root to run as nobody"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	runuser -u nobody -- test -x "$KDS_BUILD/kds-create" || skip "nobody cannot run kds-create"
	KDS_SHARED=$(mktemp -d /tmp/kds-perm.XXXXXX)
	d=$KDS_SHARED
	chmod 1777 "$d"
	g=$(getent group 1 | cut -d: -f1)
	run -1 --separate-stderr runuser -u nobody -- "$KDS_BUILD/kds-create" --group "$g" "$d/s"
	stderr_is "kds-create: $d/s: group 1: Operation not permitted"
	[ -z "$(ls -A "$d")" ]
}

# A shared stream's chmod failing (what is made is given g+rw and the
# set-group-ID bit before it gets its name): exit 1, the file and the call
# named, nothing made.
@test "kds-create --group: a chmod failing: exit 1, what and 'chmod' named, nothing made" {
	command -v strace >/dev/null || skip "no strace"
	group_one
	run -1 --separate-stderr strace -f -o /dev/null -e trace=fchmod \
	    -e inject=fchmod:error=EPERM:when=1 kds-create --group "$g" -n 2 s
	stderr_is "kds-create: s: chmod: Operation not permitted"
	[ -z "$(ls -A)" ]
	run -1 --separate-stderr strace -f -o /dev/null -e trace=fchmod \
	    -e inject=fchmod:error=EPERM:when=2 kds-create --group "$g" -n 2 s
	stderr_is "kds-create: s: shardId-000000000000: chmod: Operation not permitted"
	[ -z "$(ls -A)" ]
}

# The files and directories a chmod fails on are named as every other
# message names them: a segment with its shard's directory, a consumer's
# directory as consumers/NAME.
@test "--group: a chmod failing on a new segment names it with its shard" {
	command -v strace >/dev/null || skip "no strace"
	group_one
	# the stream's directory, the shard's, then the shard's first segment
	run -1 --separate-stderr strace -f -o /dev/null -e trace=fchmod \
	    -e inject=fchmod:error=EPERM:when=3 kds-create --group "$g" s
	stderr_is "kds-create: s: shardId-000000000000/$(seq_of 0 1).seg.tmp: chmod: Operation not permitted"
	[ -z "$(ls -A)" ]
}

@test "--group: a chmod failing on a consumer's directory names it as consumers/NAME" {
	command -v strace >/dev/null || skip "no strace"
	group_one
	kds-create --group "$g" s
	echo x | kds-put s
	# the consumers directory, then the consumer's
	run -1 --separate-stderr strace -f -o /dev/null -e trace=fchmod \
	    -e inject=fchmod:error=EPERM:when=2 kds-get -c a s
	stderr_is "kds-get: s: consumers/a: chmod: Operation not permitted"
	[ -z "$output" ]
}

# as USER CMD...: CMD as USER, with the umask of $UMASK, this test's PATH
# and clock.
as() {
	local u=$1
	shift
	runuser -u "$u" -- env PATH="$PATH" KDS_NOW="${KDS_NOW-}" \
	    sh -c 'umask "$0" && cd "$1" && shift && exec "$@"' "$UMASK" "$KDS_SHARED" "$@"
}

@test "two users of one group share a stream: each writes, reads, reshards and expires the other's files" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to add users"
	for c in useradd userdel groupadd groupdel runuser; do
		command -v $c >/dev/null || skip "no $c"
	done
	g=kdst$$
	KDS_GROUP=$g
	groupadd "$g" || skip "groupadd failed"
	KDS_USERS="kdsa$$ kdsb$$"
	for u in $KDS_USERS; do
		useradd -M -N -g nogroup -G "$g" -s /bin/sh -d /nonexistent "$u"
	done
	read -r A B <<<"$KDS_USERS"
	KDS_SHARED=$(mktemp -d /tmp/kds-shared.XXXXXX)
	chgrp "$g" "$KDS_SHARED" && chmod 2770 "$KDS_SHARED"
	as "$A" test -x "$KDS_BUILD/kds-put" || skip "$A cannot run $KDS_BUILD"
	UMASK=077		# the strictest: the group gets in all the same
	as "$A" kds-create --group "$g" -n 2 --segment-bytes 4096 s
	seq -f 'a-%04.0f-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' 1 500 | KDS_NOW=$((T + 100)) as "$A" kds-put s
	seq -f 'b-%04.0f-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' 1 500 | KDS_NOW=$((T + 200)) as "$B" kds-put s
	# B reshards what A made; A writes to the children B made
	as "$B" kds-reshard s split 0 >/dev/null
	seq -f 'a2-%04.0f' 1 300 | KDS_NOW=$((T + 300)) as "$A" kds-put s
	# one consumer, run by each in turn: B goes on from A's checkpoint
	run -0 --separate-stderr as "$A" kds-get -c etl -n 700 s
	run -0 --separate-stderr as "$B" kds-get -c etl s
	[ "${#lines[@]}" -eq 600 ]
	# A expires segments B wrote, archives them into the shared directory
	UMASK=022
	KDS_NOW=$((T + 30 * 3600)) as "$A" mkdir arch
	KDS_NOW=$((T + 30 * 3600)) as "$A" kds-expire -a arch s
	seq -f 'b2-%04.0f' 1 100 | KDS_NOW=$((T + 30 * 3600)) as "$B" kds-put s
	run -0 --separate-stderr as "$A" kds-get $E s
	[ "$(sort <<<"$output")" = "$(seq -f 'b2-%04.0f' 1 100)" ]
	run -0 --separate-stderr as "$B" sh -c 'kds-get --archive arch/s/*/*/*/*/*.tar.zst'
	[ "${#lines[@]}" -eq 1300 ]
	# both users own files; every one is the group's, g+rw, never o+w
	cd "$KDS_SHARED"
	[ -n "$(find s -user "$A" -type f)" ]
	[ -n "$(find s -user "$B" -type f)" ]
	[ -z "$(find s ! -group "$g")" ]
	[ -z "$(find s -type f ! -perm -g+rw)" ]
	[ -z "$(find s -type d ! -perm -2070)" ]
	[ -z "$(find s -perm -o+w)" ]
	# and the archives A made are the group's too
	[ -z "$(find arch -mindepth 1 ! -group "$g")" ]
	[ -z "$(find arch -type f ! -perm -g+rw)" ]
}
