#!/usr/bin/env bats
# 90-install: make install puts every file where it belongs under DESTDIR
# and PREFIX, where each shell and man look for it; make uninstall takes
# exactly those away.  The installed tools share one interface: KDS_ROOT,
# --help, --version, and options documented in --help and the man page.

load helper

REPO=$BATS_TEST_DIRNAME/..
B=${KDS_BUILD:-$REPO/build}

tools() {
	sed -n 's/^TOOLS[[:space:]]*=[[:space:]]*//p' "$REPO/Makefile"
}

# install_into DIR [make variables...]: make install, quietly, or fail.
install_into() {
	local d=$1
	shift
	make -s -C "$REPO" BUILD="$B" DESTDIR="$d" "$@" install >/dev/null
}

# tree DIR: every file and link under DIR, relative, sorted.
tree() {
	(cd "$1" && find . \( -type f -o -type l \) -printf '%P\n' | sort)
}

# manifest PREFIX ZSHDIR: what make install must put under PREFIX.
manifest() {
	local p=${1#/} t
	for t in $(tools); do
		echo "$p/bin/$t"
		echo "$p/share/man/man1/$t.1"
		echo "$p/share/bash-completion/completions/$t"
		echo "$p/share/fish/vendor_completions.d/$t.fish"
	done
	echo "$p/share/man/man5/kds-stream.5"
	echo "$p/share/man/man7/kds.7"
	echo "$p/share/bash-completion/completions/kds"
	echo "$p/share/$2/_kds"
	echo "$p/share/fish/vendor_completions.d/kds.fish"
}

@test "make install DESTDIR PREFIX=/usr: binaries, man pages, completions" {
	d=$BATS_TEST_TMPDIR/root
	run -0 make -s -C "$REPO" BUILD="$B" DESTDIR="$d" PREFIX=/usr install
	for t in $(tools); do
		[ -x "$d/usr/bin/$t" ]
		[ "$(stat -c %a "$d/usr/bin/$t")" = 755 ]
		[ -f "$d/usr/share/man/man1/$t.1" ]
		[ -L "$d/usr/share/bash-completion/completions/$t" ]
		[ -L "$d/usr/share/fish/vendor_completions.d/$t.fish" ]
		run -0 "$d/usr/bin/$t" --version
		[ "$output" = "$t (kds) 0.1.0" ]
	done
	[ "$(stat -c %a "$d/usr/share/man/man5/kds-stream.5")" = 644 ]
	[ -f "$d/usr/share/man/man7/kds.7" ]
	[ -f "$d/usr/share/bash-completion/completions/kds" ]
	[ -f "$d/usr/share/zsh/vendor-completions/_kds" ]
	[ -f "$d/usr/share/fish/vendor_completions.d/kds.fish" ]
	# nothing outside the prefix
	[ "$(ls "$d")" = usr ]
}

@test "make install puts exactly the expected files, links resolving, files 644" {
	d=$BATS_TEST_TMPDIR/root
	install_into "$d" PREFIX=/usr
	diff <(manifest /usr zsh/vendor-completions | sort) <(tree "$d") >&2
	# every link resolves inside the tree, every file but the tools is 644
	run -0 find "$d" -xtype l
	[ -z "$output" ]
	run -0 find "$d" -type f ! -path '*/bin/*' ! -perm 644
	[ -z "$output" ]
	# what is installed is what the tree holds
	cmp "$REPO/completions/kds.bash" "$d/usr/share/bash-completion/completions/kds"
	cmp "$REPO/man/kds.7" "$d/usr/share/man/man7/kds.7"
	cmp "$B/kds-get" "$d/usr/bin/kds-get"
}

@test "the default PREFIX is /usr/local, with zsh's site-functions" {
	d=$BATS_TEST_TMPDIR/root
	install_into "$d"
	diff <(manifest /usr/local zsh/site-functions | sort) <(tree "$d") >&2
	run -0 make -s -C "$REPO" BUILD="$B" DESTDIR="$d" uninstall
	[ -z "$(tree "$d")" ]
}

@test "make uninstall removes every file make install put there" {
	d=$BATS_TEST_TMPDIR/root
	make -s -C "$REPO" BUILD="$B" DESTDIR="$d" PREFIX=/usr install
	run -0 make -s -C "$REPO" BUILD="$B" DESTDIR="$d" PREFIX=/usr uninstall
	run -0 find "$d" -type f -o -type l
	[ -z "$output" ]
}

@test "make uninstall leaves the other files of those directories alone" {
	d=$BATS_TEST_TMPDIR/root
	install_into "$d" PREFIX=/usr
	for f in bin/kds-other share/man/man1/ls.1 share/man/man7/kdsx.7 \
	    share/bash-completion/completions/git share/zsh/vendor-completions/_git \
	    share/fish/vendor_completions.d/git.fish; do
		echo keep >"$d/usr/$f"
	done
	make -s -C "$REPO" BUILD="$B" DESTDIR="$d" PREFIX=/usr uninstall
	[ "$(tree "$d" | wc -l)" -eq 6 ]
	# and uninstalling twice is not an error
	run -0 make -s -C "$REPO" BUILD="$B" DESTDIR="$d" PREFIX=/usr uninstall
}

@test "installed man pages render without warnings" {
	command -v mandoc >/dev/null || skip "no mandoc"
	run -0 mandoc -Tlint -W warning "$REPO"/man/*.[157]
	[ -z "$output" ]
}

@test "man finds the installed pages by name" {
	command -v man >/dev/null || skip "no man"
	d=$BATS_TEST_TMPDIR/root
	install_into "$d" PREFIX=/usr
	for p in $(tools) kds-stream kds; do
		run -0 --separate-stderr env MANPATH="$d/usr/share/man" \
		    MANPAGER=cat MANWIDTH=80 man "$p"
		[[ ${lines[0]} == "${p^^}("* ]] || {
			echo "man $p: ${lines[0]}" >&2
			return 1
		}
	done
}

@test "bash-completion loads the installed completion of each tool by its name" {
	[ -r /usr/share/bash-completion/bash_completion ] || skip "no bash-completion"
	d=$BATS_TEST_TMPDIR/root
	install_into "$d" PREFIX=/usr
	run -0 env XDG_DATA_DIRS="$d/usr/share" BASH_COMPLETION_USER_DIR=/nonexistent \
	    bash -c 'source /usr/share/bash-completion/bash_completion
		load=__load_completion	# _comp_load from bash-completion 2.12
		declare -F $load >/dev/null || load=_comp_load
		for t; do $load "$t" && complete -p "$t"; done' \
	    - $(tools)
	for t in $(tools); do
		grep -qx "complete -F _kds $t" <<<"$output" || {
			echo "bash: no _kds for $t: $output" >&2
			return 1
		}
	done
}

@test "zsh's compinit finds the installed _kds for each tool" {
	command -v zsh >/dev/null || skip "no zsh"
	d=$BATS_TEST_TMPDIR/root
	install_into "$d" PREFIX=/usr
	run -0 zsh -fc 'fpath=($1 $fpath); autoload -U compinit
		compinit -u -D; shift; for t; do print -r -- "$t $_comps[$t]"; done' \
	    - "$d/usr/share/zsh/vendor-completions" $(tools)
	for t in $(tools); do
		grep -qx "$t _kds" <<<"$output"
	done
}

@test "fish autoloads the installed completion of each tool by its name" {
	command -v fish >/dev/null || skip "no fish"
	d=$BATS_TEST_TMPDIR/root
	install_into "$d" PREFIX=/usr
	for t in $(tools); do
		run -0 env HOME="$BATS_TEST_TMPDIR" XDG_CONFIG_HOME="$BATS_TEST_TMPDIR" \
		    XDG_DATA_HOME="$BATS_TEST_TMPDIR" XDG_DATA_DIRS="$d/usr/share" \
		    fish -c "complete -C '$t --v'"
		grep -q -e '^--version' <<<"$output" || {
			echo "fish: $t: $output" >&2
			return 1
		}
	done
}

@test "every installed tool finds a bare stream name under KDS_ROOT" {
	d=$BATS_TEST_TMPDIR/root
	install_into "$d" PREFIX=/usr
	PATH=$d/usr/bin:$PATH
	[ "$(command -v kds-get)" = "$d/usr/bin/kds-get" ]
	export KDS_ROOT=$BATS_TEST_TMPDIR/streams
	mkdir "$KDS_ROOT"
	run -0 kds-create -n 2 clicks
	[ -f "$KDS_ROOT/clicks/meta" ]
	run -0 kds-put -k user1 -p clicks <<<hello
	output_is "shardId-000000000000 100000000000000000001"
	run -0 kds-get clicks
	output_is hello
	run -0 kds-get -c etl clicks
	output_is hello
	[ -d "$KDS_ROOT/clicks/consumers/etl" ]
	run -0 kds-describe -j clicks
	[[ $output == *'"StreamName":"clicks"'* ]]
	run -0 kds-reshard clicks split 0
	[ "${lines[*]}" = "shardId-000000000002 shardId-000000000003" ]
	run -0 kds-expire -v clicks
	output_is "clicks: nothing has expired"
	# a name with a slash is a path, and nothing was made here
	run -1 --separate-stderr kds-describe ./clicks
	stderr_is "kds-describe: ./clicks: No such file or directory"
	[ -z "$(ls)" ]
}

@test "every tool has --help on stdout and --version, exit 0" {
	for t in $(tools); do
		run -0 --separate-stderr "$t" --help
		[ -z "$stderr" ]
		[[ ${lines[0]} == "usage: $t "* ]]
		run -0 --separate-stderr "$t" -h
		[[ ${lines[0]} == "usage: $t "* ]]
		run -0 --separate-stderr "$t" -V
		output_is "$t (kds) 0.1.0"
	done
}

@test "every option of every tool is in its --help and its man page" {
	local t o missing=
	for t in $(tools); do
		for o in $(sed -n '/struct option longopts/,/};/s/.*{ "\([a-z0-9-]*\)".*/\1/p' \
		    "$REPO/cmd/$t.c"); do
			"$t" --help | grep -q -e "--$o\b" || missing+=" $t --help: --$o;"
			# mdoc: "Fl \-name", its inner hyphens maybe escaped too
			grep -q -E -e "Fl \\\\-$(sed 's/-/\\\\?-/g' <<<"$o")\b" \
			    "$REPO/man/$t.1" ||
			    missing+=" man/$t.1: --$o;"
		done
	done
	[ -z "$missing" ] || { echo "missing:$missing" >&2; return 1; }
}

@test "every tool has a man page, a line in kds.7's map and three completions" {
	for t in $(tools); do
		[ -f "$REPO/man/$t.1" ]
		grep -q "^\.It Xr $t 1$" "$REPO/man/kds.7"
		grep -q "complete -F _kds .*\b$t\b" "$REPO/completions/kds.bash"
		grep -q "^#compdef .*\b$t\b" "$REPO/completions/_kds"
		grep -q "^$t)" "$REPO/completions/_kds"
		grep -q "complete -c $t " "$REPO/completions/kds.fish"
	done
}
