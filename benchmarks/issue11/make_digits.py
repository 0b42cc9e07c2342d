"""4-class ImageFolder from sklearn's load_digits (real scans of handwriting), 28x28 PNG."""
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
root = Path(sys.argv[1]); classes = [0, 1, 2, 3]
d = load_digits(); rng = np.random.default_rng(0)
for c in classes:
    idx = rng.permutation(np.flatnonzero(d.target == c))
    for split, part in (("train", idx[:140]), ("test", idx[140:])):
        out = root / split / f"digit{c}"; out.mkdir(parents=True, exist_ok=True)
        for i in part:
            img = (d.images[i] / 16.0 * 255).astype(np.uint8)
            Image.fromarray(img).resize((28, 28), Image.BILINEAR).save(out / f"{i}.png")
print("ok")
