"""`sigstream serve --engine ray`: the same wire protocol with the model state in Ray
actors, run for real inside a network namespace that holds only loopback (`unshare -n`,
then `ip link set lo up`), bounded in time and stopped by process group. The servers join
a Ray instance that the check script hosts (``serve --address``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from _support.netns import run_in_loopback_namespace

CHECK = Path(__file__).resolve().parents[1] / "_support" / "ray_serve_check.py"


@pytest.fixture(scope="module")
def scenarios() -> dict[str, dict]:
    """Both scenarios in one namespace and on one Ray instance (its start is most of the
    time): one actor, then three with one SIGKILLed. Each server joins the instance with
    ``--address``."""
    r = run_in_loopback_namespace([sys.executable, str(CHECK), "1", "3:kill"], timeout=420)
    found = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and len(found) == 2, \
        f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    return {f["scenario"]: f for f in found}


def test_ray_served_streams_equal_offline_on_one_actor(scenarios: dict) -> None:
    """One actor (three: below, before the kill)."""
    shards = 1
    found = scenarios["1"]
    assert found["max_diff"] == 0.0 and found["after_diff"] == 0.0
    assert found["reset_streams"] == [] and found["restarts"] == 0
    assert found["engine"]["shards"] == shards
    assert sorted(found["streams_per_shard"]) == sorted(
        [8 // shards + (i < 8 % shards) for i in range(shards)])  # fewest-first placement
    assert found["server_exit"] == 0


def test_a_killed_actor_restarts_and_its_streams_reply_reset(scenarios: dict) -> None:
    """SIGKILL one of 3 actors: Ray restarts it; its streams' next replies carry RESET and
    equal a fresh start, the other streams continue exactly; STATS counts it."""
    found = scenarios["3:kill"]
    assert found["max_diff"] == 0.0 and found["after_diff"] == 0.0, json.dumps(found)
    assert found["engine"]["shards"] == 3 and found["streams_per_shard"] == [3, 3, 2]
    placed_on_1 = [k for k in range(8) if k % 3 == 1]  # fewest-first: stream k on shard k % 3
    assert found["reset_streams"] == placed_on_1
    assert found["restarts"] == 1 and found["resets"] == len(placed_on_1)
    assert found["pids_after"][1] != found["engine"]["actor_pids"][1]
    assert found["pids_after"][0] == found["engine"]["actor_pids"][0]
