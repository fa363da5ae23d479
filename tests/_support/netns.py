"""Run a command inside a network namespace that holds only loopback (`unshare -n`, then
`ip link set lo up`), as Ray must run in tests: it probes public addresses and listens on
every interface. Bounded in time; the whole process group is killed if it overruns."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def run_in_loopback_namespace(argv: list[str], timeout: float
                              ) -> subprocess.CompletedProcess:
    """``argv`` in its own loopback-only namespace and process group; fails the test if any
    process of that group outlives it."""
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"',
                             "sh", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 15  # Ray's daemons take a moment to exit after shutdown
    while True:
        left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"processes outlived {argv[:3]} by 15 s: {left}"
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
