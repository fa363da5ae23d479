"""The Node.js client of examples/node (written from docs/wire.md alone) against a real
server: a stateful model's output over 40 chunks of random lengths equals offline, every
reply in order. Runs when node and the example's zeromq package are installed (.ci/run
installs both); otherwise it is skipped with the reason."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from sigstream.models.baselines.butterworth import Butterworth
from sigstream.stream.net.server import Server

EXAMPLE = Path(__file__).parents[3] / "examples" / "node"
NODE = shutil.which("node")
READY = NODE is not None and (EXAMPLE / "node_modules" / "zeromq").is_dir()


@pytest.mark.skipif(not READY, reason="needs node and `npm install --prefix examples/node`")
def test_node_client_streams_exactly_like_offline(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 300, 40)
    x = rng.standard_normal(int(sizes.sum())).astype(np.float32)
    chunks = np.split(x, np.cumsum(sizes)[:-1])
    spec = tmp_path / "input.json"
    spec.write_text(json.dumps({"stream_id": 7, "rate": 1000.0,
                                "chunks": [c.tolist() for c in chunks]}))
    model = Butterworth()
    with Server(model, "tcp://127.0.0.1:*") as srv:
        p = subprocess.run([str(NODE), str(EXAMPLE / "client.js"), srv.endpoint, str(spec)],
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    replies = json.loads(p.stdout)["replies"]
    assert [r["seq"] for r in replies] == list(range(40))
    assert all(r["stream_id"] == 7 and "error" not in r for r in replies)
    assert replies[-1]["flags"] == 2  # END echoed on the last
    assert [r["frames"] for r in replies] == sizes.tolist()
    y = np.concatenate([np.asarray(r["samples"], np.float32) for r in replies])
    ref = sps.sosfilt(model.sos, x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
