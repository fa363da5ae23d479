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
    time): one actor that grows to two, three with one SIGKILLed, two of which only one
    can start. Each server joins
    the instance with ``--address``."""
    r = run_in_loopback_namespace([sys.executable, str(CHECK), "1:grow", "3:kill", "2:starve"],
                                  timeout=480)
    found = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and len(found) == 3, \
        f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    return {f["scenario"]: f for f in found}


def test_ray_served_streams_equal_offline_on_one_actor(scenarios: dict) -> None:
    """One actor (three: below, before the kill), before a second one is added."""
    shards = 1
    found = scenarios["1:grow"]
    assert found["max_diff"] == 0.0 and found["after_diff"] == 0.0
    assert found["reset_streams"] == [] and found["restarts"] == 0
    assert found["engine"]["shards"] == shards and found["engine"]["restarts"] == 0
    assert found["engine"]["transport"] == "zmq+curve"  # the data plane, not Ray tasks
    assert found["engine"]["streams_per_shard"] == [8]
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


def test_actors_that_cannot_start_are_one_error_line_and_leave_nothing(scenarios: dict
                                                                       ) -> None:
    """--shards 2 on a Ray instance with one CPU free, --start-timeout 3: the second actor
    never gets a CPU; serve says so in one line within the timeout (plus start-up), exit
    2, and the actor it did start is killed (its CPU free again)."""
    found = scenarios["2:starve"]
    assert found["exit"] == 2, found
    lines = [ln for ln in found["stderr"].splitlines() if ln.startswith("error:")]
    assert lines == ["error: a Ray actor did not start within 3 s: no node has a free CPU "
                     "for it (each shard takes one), or its model takes longer to load "
                     "(--start-timeout)"], found["stderr"]
    assert "Traceback" not in found["stderr"] and found["seconds"] < 60
    assert found["cpus_free"] == 1


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


class _FakeRay:
    """Just enough of the ray module for ShardedRunner._started (no Ray is started)."""

    class exceptions:  # noqa: N801 - mirrors ray.exceptions
        class RayError(Exception):
            pass

    def __init__(self, ready: bool, error: str | None) -> None:
        self.ready, self.error = ready, error

    def wait(self, refs: list, timeout: float) -> tuple[list, list]:
        return (refs, []) if self.ready else ([], refs)

    def get(self, ref: object) -> tuple:
        if self.error:
            raise self.exceptions.RayError(self.error)
        return ("inc", 1, "tcp://127.0.0.1:1")


def test_an_actor_whose_model_fails_to_load_is_one_error_line() -> None:
    """The actor's constructor raised on its node (e.g. the model file is not there): Ray's
    multi-line report becomes one line naming the cause; an actor still starting at the
    deadline is the --start-timeout line."""
    from sigstream.cli.ray_serve import ShardedRunner
    from sigstream.core.errors import ConfigError

    runner = ShardedRunner.__new__(ShardedRunner)
    runner.start_timeout = 7.0
    runner.ray = _FakeRay(True, "The actor died because of an error raised in its creation "
                                "task, ray::ShardActor.__init__()\n  File \"x.py\", line 3\n"
                                "sigstream.core.errors.InputError: model file 'm.onnx' not "
                                "found\n")
    with pytest.raises(ConfigError) as e:
        runner._started(object(), deadline=0.0)
    assert str(e.value) == ("a Ray actor failed to start: sigstream.core.errors.InputError: "
                            "model file 'm.onnx' not found")
    runner.ray = _FakeRay(False, None)
    with pytest.raises(ConfigError, match=r"did not start within 7 s"):
        runner._started(object(), deadline=0.0)
    runner.ray = _FakeRay(True, None)
    assert runner._started(object(), deadline=0.0) == ("inc", 1, "tcp://127.0.0.1:1")
