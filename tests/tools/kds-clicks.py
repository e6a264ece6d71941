#!/usr/bin/env python3
"""kds-clicks.py N [SEED]: N clickstream-like JSON lines (about 230 bytes:
time, user, page, referrer, user agent), the same for the same SEED
(default 1).  For the compression tests and make bench."""

import random
import sys

n = int(sys.argv[1])
rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
uas = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
       "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
       "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
       "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"]
refs = ["https://www.google.com/", "https://shop.example.com/", "https://t.co/abc",
        "-", "https://www.bing.com/search?q=shoes"]
ms = 0
out = sys.stdout
for i in range(n):
    ms += rnd.randint(0, 40)
    s, m = divmod(ms, 1000)
    out.write('{"ts":"2026-11-28T10:%02d:%02d.%03dZ","user":"u%06d","page":"/item/%d","ref":"%s","ua":"%s"}\n'
              % (s // 60 % 60, s % 60, m, rnd.randint(0, 999999), rnd.randint(1, 9999),
                 rnd.choice(refs), rnd.choice(uas)))
