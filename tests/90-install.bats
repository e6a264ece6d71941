#!/usr/bin/env bats
# 90-install: make install puts every file where it belongs under DESTDIR
# and PREFIX, and make uninstall takes exactly those away.

load helper

REPO=$BATS_TEST_DIRNAME/..
B=${KDS_BUILD:-$REPO/build}

tools() {
	sed -n 's/^TOOLS[[:space:]]*=[[:space:]]*//p' "$REPO/Makefile"
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

@test "make uninstall removes every file make install put there" {
	d=$BATS_TEST_TMPDIR/root
	make -s -C "$REPO" BUILD="$B" DESTDIR="$d" PREFIX=/usr install
	run -0 make -s -C "$REPO" BUILD="$B" DESTDIR="$d" PREFIX=/usr uninstall
	run -0 find "$d" -type f -o -type l
	[ -z "$output" ]
}

@test "installed man pages render without warnings" {
	command -v mandoc >/dev/null || skip "no mandoc"
	run -0 mandoc -Tlint -W warning "$REPO"/man/*.[157]
	[ -z "$output" ]
}
