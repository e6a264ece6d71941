#!/bin/sh
# make demo: a clickstream round trip on a demo stream, end to end.
# Creates ./demo/clicks with 4 shards, puts 5,000 web-log lines keyed by
# user, and reads them back: all of them, one shard, and as JSON.
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

echo '$ kds-create -n 4 demo/clicks'
kds-create -n 4 demo/clicks
echo '$ kds-put -f 2 demo/clicks <demo/access.log     # partition key: the user'
kds-put -f 2 demo/clicks <demo/access.log
echo '$ kds-get demo/clicks | wc -l'
kds-get demo/clicks | wc -l
printf '%s\n' '$ kds-get --format "%p\n" demo/clicks | sort | uniq -c     # records per shard'
kds-get --format '%p\n' demo/clicks | sort | uniq -c
printf '%s\n' '$ kds-get -s 2 -n 3 --format "%o %k %s\n" demo/clicks'
kds-get -s 2 -n 3 --format '%o %k %s\n' demo/clicks
echo '$ kds-get -o jsonl -n 1 demo/clicks'
kds-get -o jsonl -n 1 demo/clicks
echo '$ kds-get -o jsonl demo/clicks | kds-put -i jsonl demo/copy   # a replay'
kds-create -n 2 demo/copy
kds-get -o jsonl demo/clicks | kds-put -i jsonl demo/copy
sort demo/access.log >demo/sorted
if kds-get demo/copy | sort | cmp -s - demo/sorted; then
	echo "demo/copy holds the same $(kds-get demo/copy | wc -l) records"
else
	echo "demo: demo/copy differs from the input" >&2
	exit 1
fi
