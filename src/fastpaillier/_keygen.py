"""`python -m fastpaillier keygen --out DIR`: a key pair as files, and its fingerprint to compare out of band."""

from __future__ import annotations

import argparse
import os
import sys

from .keys import MIN_SECURE_BITS, PublicKey, generate_keypair

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


def flower_app_folder(directory: str) -> str | None:
    """The nearest folder at or above `directory` whose pyproject.toml configures a Flower app ([tool.flwr...]), or None."""
    current = os.path.realpath(directory)
    while True:
        candidate = os.path.join(current, "pyproject.toml")
        try:
            with open(candidate, "rb") as fh:
                if b"[tool.flwr" in fh.read(1 << 20):
                    return current
        except OSError:
            pass
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def keygen(argv: list[str] | None = None) -> int:
    """Writes DIR/NAME.key (private, mode 0600) and DIR/NAME.pub, prints the fingerprint; returns an exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m fastpaillier keygen",
        description="Generate a Paillier key pair: NAME.key (private, mode 0600) and NAME.pub (public) in DIR.")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the key files (created with mode 0700); never inside a Flower app folder")
    parser.add_argument("--bits", type=int, default=MIN_SECURE_BITS, help=f"key size in bits (default {MIN_SECURE_BITS})")
    parser.add_argument("--name", default="paillier", help="file name stem (default: paillier)")
    parser.add_argument("--force", action="store_true", help="replace existing key files of that name")
    args = parser.parse_args(argv)
    if not args.name or os.sep in args.name or args.name.startswith("."):
        parser.error("--name must be a plain file name stem")
    if args.bits < MIN_SECURE_BITS:
        parser.error(f"--bits must be at least {MIN_SECURE_BITS}")
    app = flower_app_folder(args.out)
    if app is not None:
        print(f"error: {args.out} lies inside the Flower app folder {app}; `flwr run` uploads that folder, so "
              "keys there would be shipped to the SuperLink. Choose a folder outside it.", file=sys.stderr)
        return 2
    private_path = os.path.join(args.out, args.name + PRIVATE_SUFFIX)
    public_path = os.path.join(args.out, args.name + PUBLIC_SUFFIX)
    existing = [p for p in (private_path, public_path) if os.path.lexists(p)]
    if existing and not args.force:
        print(f"error: {', '.join(existing)} already exist(s); pass --force to replace, or choose another "
              "--out or --name", file=sys.stderr)
        return 2
    os.makedirs(args.out, mode=0o700, exist_ok=True)
    public_key, private_key = generate_keypair(args.bits)
    private_key.save(private_path)
    public_key.save(public_path)
    if PublicKey.load(public_path) != public_key:  # read back what the server will load
        print(f"error: {public_path} does not read back as the generated key", file=sys.stderr)
        return 1
    fingerprint = public_key.fingerprint.hex()
    print(f"private key  {private_path}   (mode 0600: give it to each client node only)")
    print(f"public key   {public_path}   (for the server)")
    print(f"fingerprint  {fingerprint}")
    print("Compare the fingerprint out of band (phone, in person) on every node and on the server before use.")
    print("Never keep these files inside a Flower app folder: `flwr run` uploads the app folder.")
    print(f"SuperNode:   flower-supernode ... --node-config \"fastpaillier-private-key='{os.path.abspath(private_path)}'\"")
    return 0
