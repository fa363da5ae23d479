"""`sigstream serve --engine ray`: the same wire protocol with the model state in Ray
actors, run for real inside a network namespace that holds only loopback (`unshare -n`,
then `ip link set lo up`), bounded in time and stopped by process group. The servers join
a Ray instance that the check script hosts (``serve --address``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _support.netns import run_in_loopback_namespace

CHECK = Path(__file__).resolve().parents[1] / "_support" / "ray_serve_check.py"


@pytest.fixture(scope="module")
def scenarios() -> dict[str, dict]:
    """The scenarios in one namespace and on one Ray instance (its start is most of the
    time): one actor, three with one SIGKILLed, one that grows to two. Each server joins
    the instance with ``--address``."""
    r = run_in_loopback_namespace([sys.executable, str(CHECK), "1", "3:kill", "1:grow"],
                                  timeout=480)
    found = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and len(found) == 3, \
        f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    return {f["scenario"]: f for f in found}


def test_ray_served_streams_equal_offline_on_one_actor(scenarios: dict) -> None:
    """One actor (three: below, before the kill)."""
    shards = 1
    found = scenarios["1"]
    assert found["max_diff"] == 0.0 and found["after_diff"] == 0.0
    assert found["reset_streams"] == [] and found["restarts"] == 0
    assert found["engine"]["shards"] == shards
    assert found["engine"]["transport"] == "zmq+curve"  # the data plane, not Ray tasks
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


def test_a_shard_added_while_serving_takes_new_streams_only(scenarios: dict) -> None:
    """--shards 1 --max-shards 2 --streams-per-shard 4 with 8 streams: the next new stream
    starts a second actor (and goes to the first: the second is not up yet); the streams
    that start once it answers go to it; every reply exact, none RESET."""
    found = scenarios["1:grow"]
    assert found["max_diff"] == 0.0 and found["after_diff"] == 0.0, json.dumps(found)
    assert found["new_diff"] == 0.0 and found["reset_streams"] == []
    assert all(not err and not reset for _, err, reset in found["new_flags"])
    grown = found["grown"]
    assert grown["shards"] == 2 and grown["added"] == 1 and grown["starting"] == 0
    assert grown["streams_per_shard"] == [9, 4]
    assert found["streams_per_shard"] == [9, 4]  # the later chunks moved nothing
    assert len(set(grown["actor_pids"])) == 2


@pytest.mark.parametrize("extra, message", [
    (["--max-shards", "3"], "--max-shards and --streams-per-shard need --engine ray"),
    (["--engine", "ray", "--shards", "2", "--max-shards", "1"],
     "--max-shards (1) is below --shards (2)"),
    (["--engine", "ray", "--max-shards", "3"], "--max-shards needs --streams-per-shard"),
    (["--engine", "ray", "--streams-per-shard", "4"],
     "--streams-per-shard needs --max-shards above --shards"),
    (["--engine", "ray", "--address", "127.0.0.1:1"],  # Ray alone would retry for minutes
     "--address 127.0.0.1:1: no Ray cluster reachable there (connection refused)"),
])
def test_growth_options_that_do_not_fit_are_one_error_line(extra: list[str],
                                                            message: str) -> None:
    """Checked before Ray starts or is joined: one line, exit 2, nothing left running."""
    r = subprocess.run([sys.executable, "-m", "sigstream", "serve", "--model", "identity",
                        "--bind", "tcp://127.0.0.1:0", *extra], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
