import sys, json
from pathlib import Path
sys.path.insert(0, sys.argv[1] + "/src")
from fedtrain.runner import RunConfig, run
out = Path(sys.argv[2]); over = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
cfg = RunConfig(data=over.pop("data", "/tmp/i11/digits"), model=over.pop("model", "smallcnn"), clients=4,
                rounds=over.pop("rounds", 4), seed=over.pop("seed", 0), device="cpu",
                image_size=over.pop("image_size", 28), privacy="paillier", key_bits=512, insecure_keys=True,
                shadow_plain=True, **over)
run(cfg, out)
for l in open(out / "metrics.jsonl"):
    r = json.loads(l); s = r["shadow"]
    print(r["round"], "acc %.3f plain %.3f dist %.2e growth %.2e exp %s step %.2e bound %.2e ratio %.2f ok %s worst %s %.1e" % (
        r["accuracy"], s["plain_accuracy"], s["distance"], s["growth_bound"], s["expansion"], s["step_error"],
        s["step_bound"], s["step_bound_ratio"], s["step_within_bound"], s["worst_tensor"], s["worst_tensor_distance"]), flush=True)
