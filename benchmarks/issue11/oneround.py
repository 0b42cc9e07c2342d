"""One plain FedAvg round R from start = plain_(R-1) + delta for delta = alpha * (paillier_(R-1) - plain_(R-1))
and random directions of the same norm; prints the distance after the round to the plain round R.
Usage: oneround.py <repo> <shadow run dir> <R>"""
import sys, json, torch, numpy as np, tempfile, logging
from pathlib import Path
sys.path.insert(0, sys.argv[1] + "/src")
from fedtrain.runner import RunConfig, setup_run, plain_global, run_round
logging.disable(logging.INFO)
d = Path(sys.argv[2]); R = int(sys.argv[3])
ck = torch.load(d / "checkpoints" / f"round_{R - 1:04d}.pt", weights_only=True)
enc, plain = ck["vector"].double().numpy(), ck["shadow_vector"].double().numpy()
vals = json.loads((d / "config.json").read_text())
vals = {k: v for k, v in vals.items() if k in RunConfig.__dataclass_fields__}
cfg = RunConfig.from_dict({**vals, "privacy": "none", "shadow_plain": False})
ctx = setup_run(cfg, tempfile.mkdtemp())
def one(start):
    ctx.server.install_global(plain_global(start.astype(np.float32), R - 1))
    run_round(ctx.server, ctx.transport, R)
    return ctx.evaluator.open(ctx.server.global_message())[0].astype(np.float64)
ref = one(plain); diff = enc - plain; n = np.linalg.norm(plain); rn = np.linalg.norm(ref)
print("start distance %.2e" % (np.linalg.norm(diff) / n))
rng = np.random.default_rng(1)
cases = [("alpha", a, a * diff) for a in (1.0, 0.5, 0.25, 0.1, -1.0)]
for i in range(2):
    e = rng.standard_normal(diff.size); cases.append(("random", i, e * np.linalg.norm(diff) / np.linalg.norm(e)))
for kind, a, delta in cases:
    out = one(plain + delta)
    print(kind, a, "start %.2e -> after round %d: %.2e" % (np.linalg.norm(delta) / n, R, np.linalg.norm(out - ref) / rn), flush=True)
