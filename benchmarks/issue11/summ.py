import json, sys, torch, numpy as np
from pathlib import Path
R = Path(sys.argv[1]); rounds = 4
vec = lambda d, r: torch.load(d / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)["vector"].double().numpy()
acc = lambda d: [json.loads(l)["accuracy"] for l in open(d / "metrics.jsonl")]
rows = {}
for name, fmt in (("plain", "smallcnn-none{}"), ("stochastic", "smallcnn-paillier{}"), ("nearest", "nearest-s{s}")):
    for s in (0, 1, 2):
        suf = "" if s == 0 else f"-seed{s}"
        d = R / fmt.format(suf, s=s)
        if not (d / "metrics.jsonl").exists(): continue
        p = R / ("smallcnn-none" + suf)
        a = acc(d)
        dist = [np.linalg.norm(vec(d, r) - vec(p, r)) / np.linalg.norm(vec(p, r)) for r in range(1, rounds + 1)]
        rows.setdefault(name, []).append(a[-1])
        print(name, s, "acc", " ".join(f"{x:.3f}" for x in a), "dist", " ".join(f"{x:.1e}" for x in dist))
for k, v in rows.items():
    print(k, "final mean %.3f sd %.3f" % (np.mean(v), np.std(v, ddof=1) if len(v) > 1 else 0), v)
