import sys, json, torch, numpy as np
from pathlib import Path
sys.path.insert(0, "/work/main/src")
import fedtrain.server as S
from fedtrain.runner import RunConfig, run
orig = S.fedavg; calls = {"n": 0}
rel = float(sys.argv[2]); over = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
def noisy(g, locals_, counts, mode="weighted"):
    out = orig(g, locals_, counts, mode); calls["n"] += 1
    if calls["n"] == 1:  # round 1 only: a perturbation the size of the codec's rounding
        rng = np.random.default_rng(5)
        d = out.astype(np.float64) - g
        out = (out + rel * np.abs(d) * rng.standard_normal(out.size)).astype(np.float32)
    return out
S.fedavg = noisy
out = Path(sys.argv[1])
cfg = RunConfig(data="/tmp/i11/digits", model="smallcnn", clients=4, rounds=4, seed=0, device="cpu", image_size=28, privacy="none", **over)
base = Path(out / "base"); run(cfg, base)
run(cfg, out / "noisy")
acc = lambda d: [round(json.loads(l)["accuracy"],3) for l in open(d / "metrics.jsonl")]
print("acc", acc(base), acc(out / "noisy"))
for r in range(1, 5):
    a = torch.load(out / "noisy" / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)["vector"].double().numpy()
    b = torch.load(base / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)["vector"].double().numpy()
    print(r, "%.2e" % (np.linalg.norm(a-b)/np.linalg.norm(b)))
