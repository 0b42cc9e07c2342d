import sys, json, torch, numpy as np
from pathlib import Path
sys.path.insert(0, sys.argv[1] + "/src"); print(sys.argv[1])
from fedtrain.runner import RunConfig, run
out = Path(sys.argv[2]); rounds = int(sys.argv[3]); extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
runs = {}
modes = {"plain": dict(privacy="none"), "pai16": dict(privacy="paillier"),
                 "pai32": dict(privacy="paillier", value_bits=32), "pai24": dict(privacy="paillier", value_bits=24), "pai20": dict(privacy="paillier", value_bits=20)}
for name, kw in [(k, modes[k]) for k in extra.get("modes", list(modes))]:
    cfg = RunConfig(data="/tmp/i11/digits", model=extra.get("model", "smallcnn"), **extra.get("cfg", {}), clients=4, rounds=rounds, seed=0,
                    device="cpu", image_size=28, key_bits=512, insecure_keys=True, **kw)
    d = out / name
    run(cfg, d)
    runs[name] = [torch.load(d / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)["vector"].double().numpy()
                  for r in range(1, rounds + 1)]
    accs = [json.loads(l)["accuracy"] for l in open(d / "metrics.jsonl")]
    print(name, "acc", [round(a, 3) for a in accs], flush=True)
for name in [k for k in runs if k != "plain"]:
    print(name, "rel L2 to plain per round",
          ["%.2e" % (np.linalg.norm(a - b) / np.linalg.norm(b)) for a, b in zip(runs[name], runs["plain"])])
