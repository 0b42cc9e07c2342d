"""One round of federated training with fedtrain, encrypted (Paillier FedAvg) beside plain FedAvg.

    pytest benchmarks/test_bench_round.py --benchmark-only [--bench-bits 2048] [--bench-threads 1]

A small but complete round, as `fedtrain run` makes it: the smallcnn model (about 98k parameters),
3 in-process clients (the fewest a secure round accepts by default) on demo phantom images of
32x32 (16 per client), one local epoch, then the
secure aggregation of fedtrain (packed updates with value_bits=16, DJN randomness by CRT, the
server's homomorphic sum, split decryption among the clients, the sealed global model) or plain
FedAvg.  The clients run one after another in this process, so a round's time is the sum of its
phases; extra_info holds the last round's time per phase and the bytes each client sent and
received.  fastpaillier's default thread count and torch's are set to --bench-threads for the
module.  Skipped where torch is not installed (pip install '.[fl]').
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the FL round needs torch (pip install '.[fl]')")

import fastpaillier as fp  # noqa: E402
from fedtrain.runner import RunConfig, run_round, setup_run  # noqa: E402

CLIENTS = 3  # fedtrain's default --min-clients: a round of 2 updates would show each to the other
TRAIN_PER_CLASS = 12  # demo images per class (4 classes), split among the clients
ROUND = dict(model="smallcnn", clients=CLIENTS, local_epochs=1, image_size=32, demo_train_per_class=TRAIN_PER_CLASS,
             demo_test_per_class=2, batch_size=8, value_bits=16, randomness="djn", device="cpu", seed=0,
             rounds=1_000_000, run_id="benchmark")
MODES = {
    "plain": ("none", "fedtrain, plain FedAvg", "weighted FedAvg of float32 updates"),
    "paillier": ("paillier", f"fedtrain + fastpaillier {fp.__version__}",
                 "Paillier FedAvg: PackedCodec value_bits=16, DJN randomness by CRT, server-side homomorphic "
                 "sum, split decryption among the clients"),
}


@pytest.fixture(scope="module")
def threads_and_cache(settings: Any, tmp_path_factory: pytest.TempPathFactory):
    """--bench-threads for fastpaillier and torch, and a private demo-data cache, for this module."""
    fp_threads, torch_threads = fp.get_num_threads(), torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDTRAIN_CACHE", str(tmp_path_factory.mktemp("demo-cache")))
        fp.set_num_threads(settings.threads)
        torch.set_num_threads(settings.threads)
        try:
            yield
        finally:
            fp.set_num_threads(fp_threads)
            torch.set_num_threads(torch_threads)


@pytest.mark.parametrize("mode", list(MODES))
def test_round(measure, benchmark, settings, threads_and_cache, tmp_path_factory, mode):
    privacy, library, setting = MODES[mode]
    config = RunConfig(privacy=privacy, key_bits=settings.bits, insecure_keys=settings.insecure, **ROUND)
    ctx = setup_run(config, tmp_path_factory.mktemp(f"round-{mode}"))
    images = len(ctx.data.train) // CLIENTS
    records = []

    def one_round() -> None:
        records.append(run_round(ctx.server, ctx.transport, ctx.server.model_round + 1))

    measure(one_round, group=settings.group("fl round", model=config.model, clients=CLIENTS, images=images),
            items=1, unit="rounds", library=library, setting=setting)
    assert ctx.server.model_round == len(records)
    last = records[-1]
    benchmark.extra_info.update(
        model_parameters=ctx.clients[0].models.layout.size,
        phase_seconds={k: round(v, 6) for k, v in last["timings"].items()},
        bytes_sent_per_client=last["bytes"]["sent_per_client"],
        bytes_received_per_client=last["bytes"]["received_per_client"])
