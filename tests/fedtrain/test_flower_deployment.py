"""fedtrain on Flower's deployment engine: a real SuperLink and SuperNodes on 127.0.0.1 (free ports).

Each test starts `flower-superlink` and one `flower-supernode` per hospital (each given its data
folder and key file by node config), submits the Flower App with `flwr run`, follows the run by its
status (`flwr ls`), and stops every process by its PID at the end, also on failure.  The first test
checks that two rounds (over TLS) equal `fedtrain run` of the same seed; the second kills one SuperNode
in the middle of a round and checks that the round completes with the others.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("flwr", reason="fedtrain on Flower needs the flwr extra (pip install '.[flwr]', flwr==1.42.0)")

import fedtrain  # noqa: E402
from fedtrain.flower.common import read_events  # noqa: E402
from fedtrain.flower.evaluate import evaluate_run  # noqa: E402
from fedtrain.flower.local import FlowerRunError, LocalFederation, _alive, run_local  # noqa: E402
from fedtrain.flower.prepare import prepare  # noqa: E402
from fedtrain.runner import RunConfig, run_rounds, setup_run  # noqa: E402

from flower_grid import LosingTransport, assert_same_record  # noqa: E402

TINY = dict(model="smallcnn", image_size=32, demo_train_per_class=4, demo_test_per_class=2, clients=3,
            key_bits=512, insecure_keys=True, rounds=2, min_clients=2, seed=0, privacy="paillier")
RUN_TIMEOUT = 240.0  # seconds a test's Flower run may take


def config(tmp: Path, **changes) -> RunConfig:
    return RunConfig(**{**TINY, "keys": str(tmp / "keys"), **changes})


def checkpoint(run_dir: Path, round_: int) -> torch.Tensor:
    return torch.load(run_dir / "checkpoints" / f"round_{round_:04d}.pt", map_location="cpu",
                      weights_only=True)["vector"]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def in_process(tmp: Path, lose: tuple[int, int, str] | None = None, **changes) -> Path:
    ctx = setup_run(config(tmp, **changes), tmp / "run")
    if lose is not None:
        ctx.transport = LosingTransport(ctx.clients, *lose)
    run_rounds(ctx)
    return tmp / "run"


def environment() -> dict[str, str]:
    """The processes' environment: this fedtrain (the one under test) first on their path."""
    src = str(Path(fedtrain.__file__).resolve().parents[1])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p))


class Deployment:
    """A prepared run on a LocalFederation; every process is stopped, and checked gone, on leaving."""

    def __init__(self, tmp: Path, *, tls: bool = False, simulation: bool = False, **changes) -> None:
        self.setup = prepare(config(tmp, **changes), tmp / "run",
                             hospitals_dir=None if simulation else tmp / "hospitals")
        self.federation = LocalFederation(self.setup, tmp / "local", env=environment(), tls=tls,
                                          simulation=simulation)
        self.pids: set[int] = set()

    def __enter__(self) -> "Deployment":
        try:
            self.federation.start()
        except BaseException:
            self.federation.stop()
            raise
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.pids.update(self.federation.processes())
        self.federation.stop()
        left = sorted(p for p in self.pids if _alive(p))
        if kind is None:  # else the test's own error says more
            assert not left, f"processes left running: {left}"

    def watch(self) -> None:
        self.pids.update(self.federation.processes())

    def wait_for_event(self, match, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.watch()
            for event in read_events(self.setup.server_dir / "events.jsonl"):
                if event["event"] == "failed":
                    raise AssertionError(f"the ServerApp failed: {event['error']}")
                if match(event):
                    return event
            time.sleep(0.1)
        raise AssertionError(f"no such event within {timeout:g} s; logs in {self.federation.logs}")

    def run(self, before_wait=None) -> dict:
        run_id = self.federation.submit()
        if before_wait is not None:
            before_wait()
        info = self.federation.wait(run_id, timeout=RUN_TIMEOUT)
        self.watch()
        assert info["status"] == "finished:completed", (info, (self.setup.server_dir / "events.jsonl").read_text())
        return info


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """`fedtrain run` of TINY in-process."""
    return in_process(tmp_path_factory.mktemp("in-process"))


def test_two_rounds_on_the_deployment_engine_equal_fedtrain_run(tmp_path, reference):
    """TLS on (a throw-away CA): SuperNodes and the flwr CLI verify the SuperLink's certificate."""
    with Deployment(tmp_path / "flower", tls=True, deadline=180.0) as deployment:
        deployment.run()
    assert "Uvicorn running on https://" in (deployment.federation.logs / "superlink.log").read_text()
    run_dir = deployment.setup.out_dir
    evaluate_run(run_dir)
    for r in (1, 2):
        assert torch.equal(checkpoint(run_dir, r), checkpoint(reference, r)), f"round {r}"
    for ours, theirs in zip(metrics(run_dir), metrics(reference), strict=True):
        assert_same_record(ours, theirs)
    assert (run_dir / "report.md").is_file()
    nodes = {e["client"]: e["node"] for e in read_events(deployment.setup.server_dir / "events.jsonl")
             if e["event"] == "hello"}
    assert sorted(nodes) == [0, 1, 2] and len(set(nodes.values())) == 3


def test_two_rounds_on_the_simulation_engine_equal_fedtrain_run(tmp_path, reference):
    """Flower's simulation engine (Ray: flwr[simulation], not in the test extra): nodes are partitions."""
    pytest.importorskip("ray", reason="Flower's simulation engine needs Ray: pip install 'flwr[simulation]==1.42.0'")
    with Deployment(tmp_path / "flower", simulation=True, deadline=180.0) as deployment:
        deployment.run()
    run_dir = deployment.setup.out_dir
    evaluate_run(run_dir)
    for r in (1, 2):
        assert torch.equal(checkpoint(run_dir, r), checkpoint(reference, r)), f"round {r}"
    for ours, theirs in zip(metrics(run_dir), metrics(reference), strict=True):
        assert_same_record(ours, theirs)


def test_a_failed_run_is_told_by_its_status_not_by_flwr_run(tmp_path):
    """`flwr run` submits the run and exits 0; the ServerApp then fails (no server folder there): the status says so."""
    setup = prepare(config(tmp_path, rounds=1), tmp_path / "run")
    with pytest.raises(FlowerRunError, match="finished:failed"):
        run_local(setup, tmp_path / "local", timeout=RUN_TIMEOUT,
                  overrides=(f'server-dir="{tmp_path / "nowhere"}"',), env=environment())
    assert not (tmp_path / "nowhere").exists()


def test_a_supernode_killed_mid_round_leaves_the_round_to_the_others(tmp_path):
    """Hospital 2's SuperNode is killed (SIGKILL) as soon as the server has sent the round's sums."""
    with Deployment(tmp_path / "flower", rounds=1, deadline=45.0) as deployment:
        def kill_when_the_sums_are_out():
            deployment.wait_for_event(lambda e: e["event"] == "sent" and e.get("kinds") == ["stats_sum"],
                                      timeout=RUN_TIMEOUT)
            deployment.federation.kill_node(2)

        deployment.run(before_wait=kill_when_the_sums_are_out)
        assert deployment.federation.supernodes[2].poll() is not None
    run_dir = deployment.setup.out_dir
    evaluate_run(run_dir)
    (record,) = metrics(run_dir)
    assert list(record["dropped"]) == ["2"] and record["leader"] == 0
    why = record["dropped"]["2"]
    # killed before it sent its update (the usual case) or, had it been quicker, before it decrypted its slice
    step = "stats_sum" if why.startswith("during the update") else "decrypt_request"
    assert step == "stats_sum" or why.startswith("during decryption"), why
    assert record["survivors"] == ([0, 1] if step == "stats_sum" else [0, 1, 2])
    reference = in_process(tmp_path / "in-process", lose=(2, 1, step), rounds=1)
    assert torch.equal(checkpoint(run_dir, 1), checkpoint(reference, 1))
