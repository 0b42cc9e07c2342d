"""Runs a grid of configs (plain and paillier) over seeds; prints per-round accuracy and distance to plain.
Usage: measure.py <repo> <out> '<json: {"data":..., "seeds":[...], "variants": {name: overrides}, "base": {...}}>'"""
import sys, json, torch, numpy as np, logging
from pathlib import Path
sys.path.insert(0, sys.argv[1] + "/src")
from fedtrain.runner import RunConfig, run
logging.disable(logging.INFO)
out = Path(sys.argv[2]); spec = json.loads(sys.argv[3])
base = dict(data="/tmp/i11/digits", model="smallcnn", clients=4, rounds=4, device="cpu", image_size=28,
            key_bits=512, insecure_keys=True); base.update(spec.get("base", {}))
vec = lambda d, r: torch.load(d / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)["vector"].double().numpy()
for seed in spec["seeds"]:
    for name, ov in spec["variants"].items():
        d = out / f"{name}-s{seed}"
        cfg = RunConfig(**{**base, **{k: v for k, v in ov.items() if k != "ref"}, "seed": seed})
        if not (d / "metrics.jsonl").exists() or len(open(d / "metrics.jsonl").readlines()) < cfg.rounds:
            run(cfg, d)
        accs = [json.loads(l)["accuracy"] for l in open(d / "metrics.jsonl")]
        line = f"{name} seed {seed} acc " + " ".join(f"{a:.3f}" for a in accs)
        ref = ov.get("ref")
        if ref:
            p = out / f"{ref}-s{seed}"
            line += " dist " + " ".join("%.1e" % (np.linalg.norm(vec(d, r) - vec(p, r)) / np.linalg.norm(vec(p, r)))
                                        for r in range(1, cfg.rounds + 1))
        print(line, flush=True)
