#!/usr/bin/env python3
"""kds-latency.py STREAM N GAP_MS: put N single records GAP_MS apart, each
with its own kds-put, while kds-get -F follows STREAM; print the latency of
each from arrival (the time kds-put stored it, %T) to the moment the
follower's line was read here, in ms, one a line, in put order.

The follower's output is read by a thread of its own, so that a line is
timed when it comes, not when the loop that starts kds-put gets round to
it: kds-put syncs before it exits, and the follower does not wait for that.
%T is whole milliseconds, cut down: a latency here is up to 1 ms more than
the true one, never less."""

import os
import subprocess
import sys
import threading
import time

stream, n, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000
get = subprocess.Popen(["kds-get", "-F", "-i", "LATEST", "--format", "%T %s\n",
                        stream], stdout=subprocess.PIPE, bufsize=0)
lat = {}
done = threading.Event()


def follow():
    fd = get.stdout.fileno()
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        now = time.time() * 1000
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            t, i = line.split(b" ")
            lat[int(i)] = now - int(t)
        if len(lat) >= n:
            done.set()


reader = threading.Thread(target=follow, daemon=True)
reader.start()
time.sleep(0.2)             # let it start and watch
for i in range(n):
    start = time.time()
    subprocess.run(["kds-put", "-k", "k", stream], input=b"%d\n" % i, check=True)
    time.sleep(max(0, start + gap - time.time()))
done.wait(5)
get.terminate()
get.wait()
if len(lat) < n:
    sys.exit("kds-latency: %d of %d records seen" % (len(lat), n))
for i in range(n):
    print("%.1f" % lat[i])
