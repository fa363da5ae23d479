#!/usr/bin/env python3
"""Server in its own process; a flooder in its own process (10,000 abandoned one-chunk
streams + junk, as fast as it can); the polite client here measures its RTTs before and
during the flood. Extra arguments go to `sigstream serve` (e.g. --new-stream-rate 0 for
the server without its new-stream rate limit)."""
import subprocess, sys, time, socket, numpy as np, os
from sigstream.stream.net.client import Client
def cpu(pid):  # user + system seconds of a process
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
ep = f"tcp://127.0.0.1:{port}"
srv = subprocess.Popen([sys.executable, "-m", "sigstream.cli.main", "serve", "--model", "identity", "--bind", ep, "--stats-every", "0", *sys.argv[1:]], stderr=subprocess.DEVNULL)
time.sleep(3)
FLOOD = f"""
import os, numpy as np, time
from sigstream.stream.net.client import Client
c = Client({ep!r}, hwm=200000)
for k in range(10000):
    c.send(np.ones(1, np.float32), stream_id=100000 + k)
    if k % 50 == 0:
        c.send_raw([b"junk"]); c.send_raw([os.urandom(64), os.urandom(8)])
    if k % 100 == 0:
        time.sleep(0.002)
n = 0
while c.poll(2.0):
    c.recv(); n += 1
print(n)
"""
polite = Client(ep)
seq = [0]
def rtts(seconds):
    out = []; end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter(); polite.send(np.ones(16, np.float32), stream_id=1, seq=seq[0]); seq[0] += 1
        h, y = polite.recv(timeout=10); out.append(time.perf_counter() - t)
        assert not h.is_error and not h.reset
        time.sleep(0.001)
    return np.array(out) * 1e6
idle = rtts(2.0)
r0, c0 = rss(srv.pid), cpu(srv.pid)
fl = subprocess.Popen([sys.executable, "-c", FLOOD], stdout=subprocess.PIPE, text=True)
busy = []
while fl.poll() is None:
    busy.extend(rtts(0.2))
busy = np.array(busy)
r1, c1 = rss(srv.pid), cpu(srv.pid)
st = polite.request_stats()
print(f"idle p50 {np.percentile(idle,50):.0f} p99 {np.percentile(idle,99):.0f} us (n={idle.size}); during the flood p50 {np.percentile(busy,50):.0f} p99 {np.percentile(busy,99):.0f} us (n={busy.size}); flood replies {fl.stdout.read().strip()}; RSS {r0:.1f} -> {r1:.1f} MB (+{r1-r0:.1f}); held {st['streams']}; rejected {st['rejected']}; throttled {st.get('throttled')}; server CPU during the flood {c1 - c0:.2f} s")
srv.terminate(); srv.wait()
