"""Plain FedAvg twice with the same seed; the second run's global model after round R gets
Gaussian noise of relative L2 size REL (element-wise proportional to that round's update).
Usage: chaos2.py <repo> <out> <R> <REL> '<json cfg overrides>' """
import sys, json, torch, numpy as np
from pathlib import Path
sys.path.insert(0, sys.argv[1] + "/src")
import fedtrain.server as S
from fedtrain.runner import RunConfig, run
out = Path(sys.argv[2]); R = int(sys.argv[3]); rel = float(sys.argv[4])
over = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
rounds = over.pop("rounds", 4)
orig = S.fedavg; state = {"on": False, "n": 0}
def noisy(g, locals_, counts, mode="weighted"):
    out_ = orig(g, locals_, counts, mode)
    if state["on"]:
        state["n"] += 1
        if state["n"] == R:
            rng = np.random.default_rng(5)
            d = np.abs(out_.astype(np.float64) - g)
            e = d * rng.standard_normal(out_.size)
            e *= rel * np.linalg.norm(out_) / np.linalg.norm(e)
            out_ = (out_ + e).astype(np.float32)
    return out_
S.fedavg = noisy
cfg = RunConfig(data=over.pop("data", "/tmp/i11/digits"), model=over.pop("model", "smallcnn"), clients=4,
                rounds=rounds, seed=over.pop("seed", 0), device="cpu", image_size=over.pop("image_size", 28),
                privacy="none", **over)
run(cfg, out / "base"); state["on"] = True; run(cfg, out / "noisy")
acc = lambda d: [round(json.loads(l)["accuracy"], 3) for l in open(d / "metrics.jsonl")]
print("acc base", acc(out / "base"), "noisy", acc(out / "noisy"))
print("rel dist", ["%.2e" % (np.linalg.norm(a - b) / np.linalg.norm(b)) for a, b in (
    (torch.load(out / "noisy" / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)["vector"].double().numpy(),
     torch.load(out / "base" / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)["vector"].double().numpy())
    for r in range(1, rounds + 1))])
