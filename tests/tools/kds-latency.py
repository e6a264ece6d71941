#!/usr/bin/env python3
"""kds-latency.py STREAM N GAP_MS: put N single records GAP_MS apart, each
with its own kds-put, while kds-get -F follows STREAM; print the latency of
each from arrival (the time kds-put stored it, %T) to the moment the
follower's line was read here, in ms, one a line, in put order."""

import os
import subprocess
import sys
import time

stream, n, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000
get = subprocess.Popen(["kds-get", "-F", "-i", "LATEST", "--format", "%T %s\n",
                        stream], stdout=subprocess.PIPE, bufsize=0)
time.sleep(0.2)             # let it start and watch
lat = {}
fd = get.stdout.fileno()
buf = b""
import selectors
sel = selectors.DefaultSelector()
sel.register(fd, selectors.EVENT_READ)


def drain(timeout):
    global buf
    for _ in sel.select(timeout):
        chunk = os.read(fd, 65536)
        now = time.time() * 1000
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            t, i = line.split(b" ")
            lat[int(i)] = now - int(t)


for i in range(n):
    subprocess.run(["kds-put", "-k", "k", stream], input=b"%d\n" % i, check=True)
    end = time.time() + gap
    while time.time() < end:
        drain(max(0, end - time.time()))
deadline = time.time() + 5
while len(lat) < n and time.time() < deadline:
    drain(0.1)
get.terminate()
get.wait()
if len(lat) < n:
    sys.exit("kds-latency: %d of %d records seen" % (len(lat), n))
for i in range(n):
    print("%.1f" % lat[i])
