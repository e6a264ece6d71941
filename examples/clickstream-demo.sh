#!/bin/bash
# make demo: a clickstream through every kds tool, end to end.
# Makes ./demo/access.log, 5,000 web-log lines, and puts them in
# ./demo/clicks, 4 shards keyed by user, resharded to 8 halfway while a
# named consumer reads; reads them back whole, by shard and as JSON; copies
# the stream; and expires the copy into archives, which it reads back.
# Each command is printed as typed at a prompt, then run.
set -eu
B=${KDS_BUILD:-build}
PATH="$B:$PATH"
rm -rf demo
mkdir demo

# 5,000 clickstream-like lines: time, user, method, path, status.
awk 'BEGIN {
	split("/ /cart /checkout /search?q=shoes /item/4711 /login", page, " ")
	srand(42)
	for (i = 0; i < 5000; i++)
		printf "2026-11-28T10:%02d:%02dZ\tuser%03d\tGET\t%s\t200\n",
		    i / 60 % 60, i % 60, int(rand() * 500), page[int(rand() * 6) + 1]
}' >demo/access.log

# say CMD [COMMENT]: print CMD at a prompt, with its COMMENT, and run it.
say() {
	if [ $# -gt 1 ]; then
		printf '$ %s     # %s\n' "$1" "$2"
	else
		printf '$ %s\n' "$1"
	fi
	eval "$1"
}

say 'kds-create -n 4 demo/clicks'
say 'head -n 3000 demo/access.log | kds-put -f 2 demo/clicks' \
    'partition key: field 2, the user'
say 'kds-get -c sessions demo/clicks | wc -l' 'a named consumer reads them'
say 'kds-reshard demo/clicks scale 8' 'double the shards'
say 'tail -n +3001 demo/access.log | kds-put -f 2 demo/clicks'
say 'kds-get -c sessions demo/clicks | wc -l' 'it goes on where it stopped'
say 'kds-describe demo/clicks | head -n 6'
say 'kds-get --format "%p\n" demo/clicks | sort | uniq -c' 'records per shard'
say 'kds-get -s 7 -n 3 --format "%o %k %s\n" demo/clicks'
say 'kds-get -o jsonl -n 1 demo/clicks'

# Each user's clicks come back in the order they were logged, through the
# reshard: sorted by user, stably, both are the same.
say 'kds-get demo/clicks | sort -s -k 2,2 | cmp - <(sort -s -k 2,2 demo/access.log) && echo same order' ||
	{ echo "demo: the clicks of some user are out of order" >&2; exit 1; }
say 'kds-create -n 2 demo/copy'
say 'kds-get -o jsonl demo/clicks | kds-put -i jsonl demo/copy' 'a replay'
say 'kds-get demo/copy | sort | cmp - <(sort demo/access.log) && echo same records' ||
	{ echo "demo: demo/copy differs from the input" >&2; exit 1; }

sleep 2
mkdir demo/archive
say 'kds-expire -r 1s -a demo/archive demo/copy' \
    'keep 1 second: archive the rest'
say 'kds-get demo/copy | wc -l'
say 'kds-get --archive demo/archive/copy/*/*/*/*/*.tar.zst | wc -l'
