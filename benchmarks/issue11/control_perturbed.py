"""Control for the demo-data densenet121 compare: plain FedAvg against plain FedAvg whose global model
after round 1 gets Gaussian noise of relative L2 size REL (element-wise proportional to that round's
update), the size of the codec's round-1 rounding (6e-5 to 1.1e-4 in the compare).  3 seeds, 24 rounds.
Usage: control_perturbed.py [REL (1e-4)] [OUT (/tmp/i11/ctl)]"""
import sys, json, statistics as st
from pathlib import Path

import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
import fedtrain.server as S
from fedtrain.runner import RunConfig, run
REL = float(sys.argv[1]) if len(sys.argv) > 1 else 1e-4
orig = S.fedavg
state = {"on": False, "n": 0}
def noisy(g, locals_, counts, mode="weighted"):
    out = orig(g, locals_, counts, mode)
    if state["on"]:
        state["n"] += 1
        if state["n"] == 1:
            rng = np.random.default_rng(5)
            e = np.abs(out.astype(np.float64) - g) * rng.standard_normal(out.size)
            e *= REL * np.linalg.norm(out) / np.linalg.norm(e)
            out = (out + e).astype(np.float32)
    return out
S.fedavg = noisy
acc = lambda d: [100 * json.loads(l)["accuracy"] for l in open(d / "metrics.jsonl")]
res = {}
for seed in (0, 1, 2):
    cfg = RunConfig(data=None, model="densenet121", clients=4, rounds=24, seed=seed, device="cpu", image_size=32,
                    privacy="none", demo_train_per_class=160, demo_test_per_class=80)
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/i11/ctl") / f"s{seed}"
    state["on"] = False; run(cfg, out / "base")
    state["on"] = True; state["n"] = 0; run(cfg, out / "noisy")
    res[seed] = (acc(out / "base"), acc(out / "noisy"))
    print(seed, "base", " ".join(f"{x:.1f}" for x in res[seed][0]), flush=True)
    print(seed, "noisy", " ".join(f"{x:.1f}" for x in res[seed][1]), flush=True)
for k in (1, 5, 10):
    b = [st.fmean(res[s][0][-k:]) for s in res]; n = [st.fmean(res[s][1][-k:]) for s in res]
    d = [y - x for x, y in zip(b, n)]
    print(f"last {k}: plain {st.fmean(b):.1f}+-{st.stdev(b):.1f} perturbed {st.fmean(n):.1f}+-{st.stdev(n):.1f} "
          f"diff {st.fmean(d):+.1f}+-{st.stdev(d):.1f}", flush=True)
