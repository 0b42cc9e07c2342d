"""Optional peer libraries measured beside fastpaillier: SecretFlow's sf-heu, pypaillier, FATE's fate-utils.

None of them is a dependency of fastpaillier or of its ``bench`` extra.  Install the ones to compare
by hand (each ships wheels for CPython 3.11 on x86-64 Linux); whatever imports is measured, the
rest is left out (``bench_crypto.py``) or skipped (``pytest benchmarks/``):

    pip install --pre sf-heu    # SecretFlow HEU; ZPaillier through heu.numpy
    pip install pypaillier      # Paillier in Rust on GMP, bound with pyo3
    pip install fate-utils      # FATE's Rust crypto helpers (fate_utils.paillier)

Each adapter below makes its own key of the requested size (the libraries cannot load each other's
keys), encrypts a batch of integers 0 <= m < 2^62 given as an int64 numpy array, decrypts a batch
back to exact integers and adds two batches element by element.  A call is timed as a user makes
it, conversions in and out included.  Each peer runs at its fastest setting that computes the same
thing as fastpaillier (a semantically secure public-key encryption, an exact decryption, an
elementwise ciphertext sum), named in its class docstring and in `Peer.setting`.

One thread: the peers parallelise internally (rayon in pypaillier and fate-utils, yacl's thread
pool in HEU).  Importing this module sets RAYON_NUM_THREADS and YACL_NUM_THREADS to 1 (overriding
any value in the environment); those pools read them when they start, so import this module
before the first call into a peer.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping, Sequence

import numpy as np

PEER_THREADS = 1
THREAD_VARIABLES = ("RAYON_NUM_THREADS", "YACL_NUM_THREADS")
for _variable in THREAD_VARIABLES:
    os.environ[_variable] = str(PEER_THREADS)

OPERATIONS = ("encrypt", "decrypt", "add")

# The fastpaillier operation (a row name of bench_crypto.py) each peer operation is compared with:
# the peers encrypt with the public key, and fastpaillier's fastest public-key encryption is DJN.
FASTPAILLIER_ROWS = {
    "encrypt": "encrypt, public key, DJN",
    "decrypt": "decrypt",
    "add": "add ciphertext + ciphertext",
}

ROW_TITLES = {
    "encrypt": "encrypt, public key (per ciphertext)",
    "decrypt": "decrypt (per ciphertext)",
    "add": "add ciphertext + ciphertext",
}


class PeerError(RuntimeError):
    """A peer library computed a wrong result."""


class Peer:
    """One peer library behind a common interface (see the module docstring)."""

    name: ClassVar[str]       # the distribution, as pip installs it
    module: ClassVar[str]     # the top-level module it provides
    label: ClassVar[str]      # short column title
    setting: ClassVar[str]    # what is measured, in one line

    def __init__(self, bits: int) -> None:
        self.bits = bits

    @classmethod
    def version(cls) -> str:
        try:
            return importlib.metadata.version(cls.name)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    @classmethod
    def title(cls) -> str:
        return f"{cls.label} {cls.version()}"

    def encrypt(self, values: np.ndarray) -> object:
        """Encryptions of the int64 values (0 <= m < 2^62), in the peer's own batch type."""
        raise NotImplementedError

    def decrypt(self, batch: object) -> Sequence[int]:
        """The exact plaintexts of a batch."""
        raise NotImplementedError

    def add(self, a: object, b: object) -> object:
        """Elementwise sums of two batches of the same length."""
        raise NotImplementedError

    def tile(self, batch: object, size: int, count: int) -> object:
        """`count` ciphertexts made by repeating the `size` of batch (cheap large operands)."""
        raise NotImplementedError


class HeuZPaillier(Peer):
    """SecretFlow HEU (``sf-heu``), ZPaillier through ``heu.numpy``.

    ZPaillier is HEU's fastest Paillier on CPUs without AVX-512 IFMA (IPCL needs IFMA): fixed-base
    randomness h_s^r (DJN style) with precomputed tables.  ``hnp.setup(SchemaType.ZPaillier, bits)``,
    the default BigintEncoder (scale 1), ``Encryptor.encrypt`` / ``Decryptor.decrypt`` /
    ``Evaluator.add`` on whole arrays; yacl's pool held to one thread (YACL_NUM_THREADS=1).
    """

    name, module, label = "sf-heu", "heu", "sf-heu ZPaillier"
    setting = ("heu.numpy, SchemaType.ZPaillier (fixed-base h_s^r randomness, DJN style), BigintEncoder, "
               "whole-array encrypt/decrypt/add, YACL_NUM_THREADS=1")

    def __init__(self, bits: int) -> None:
        super().__init__(bits)
        from heu import numpy as hnp
        from heu import phe

        self._kit = hnp.setup(phe.SchemaType.ZPaillier, bits)
        self._encryptor = self._kit.encryptor()
        self._decryptor = self._kit.decryptor()
        self._evaluator = self._kit.evaluator()

    def encrypt(self, values: np.ndarray) -> object:
        return self._encryptor.encrypt(self._kit.array(np.asarray(values, dtype=np.int64)))

    def decrypt(self, batch: object) -> Sequence[int]:
        return self._decryptor.decrypt(batch).to_numpy()  # an object array of Python ints

    def add(self, a: object, b: object) -> object:
        return self._evaluator.add(a, b)

    def tile(self, batch: object, size: int, count: int) -> object:
        return batch[[i % size for i in range(count)]]


class PyPaillier(Peer):
    """pypaillier (Rust on GMP through pyo3; imported as ``paillier``).

    Its only encryption: randomness h_s^r with h_s derived from n and an exponent of
    ``PublicKey.exponent_bits`` bits (DJN style).  ``encrypt_integers`` (exact integers, one call
    per batch), ``decrypt_exact_many`` (exact integers; ``decrypt_many`` returns decimal strings
    and ``decrypt`` a float, which drops bits past 2^53), ``add_blocks`` with one block per pair
    (an elementwise sum in one call).  rayon held to one thread (RAYON_NUM_THREADS=1).
    """

    name, module, label = "pypaillier", "paillier", "pypaillier"
    setting = ("encrypt_integers (h_s^r randomness, DJN style), decrypt_exact_many, add_blocks with one "
               "block per pair, RAYON_NUM_THREADS=1")

    def __init__(self, bits: int) -> None:
        super().__init__(bits)
        import paillier

        if not hasattr(paillier, "encrypt_integers"):
            raise ImportError("the module 'paillier' found is not pypaillier's")
        self._lib = paillier
        self._pk, self._sk = paillier.generate_keypair(bits)

    def encrypt(self, values: np.ndarray) -> object:
        return self._lib.encrypt_integers(self._pk, np.asarray(values, dtype=np.int64).tolist())

    def decrypt(self, batch: object) -> Sequence[int]:
        return [m for m, _scale in self._lib.decrypt_exact_many(self._sk, batch)]

    def add(self, a: object, b: object) -> object:
        n = len(a)
        return self._lib.add_blocks(self._pk, a + b, [[i, n + i] for i in range(n)])

    def tile(self, batch: object, size: int, count: int) -> object:
        return (list(batch) * -(-count // size))[:count]


class FateUtils(Peer):
    """FATE's ``fate-utils`` (Rust; ``fate_utils.paillier``).

    Its only secure encryption is the classic one, randomness r^n mod n^2
    (``PK.encrypt_encoded(..., obfuscate=True)``; obfuscate=False is a deterministic 1 + m n,
    not an encryption).  ``Coder.encode_i64_vec`` / ``decode_i64_vec`` around
    ``SK.decrypt_to_encoded``; ``CiphertextVector.add`` for the elementwise sum.  rayon held
    to one thread (RAYON_NUM_THREADS=1).
    """

    name, module, label = "fate-utils", "fate_utils", "fate-utils"
    setting = ("fate_utils.paillier, encrypt_encoded(obfuscate=True) (classic r^n randomness), "
               "decrypt_to_encoded, CiphertextVector.add, i64 coder, RAYON_NUM_THREADS=1")

    def __init__(self, bits: int) -> None:
        super().__init__(bits)
        from fate_utils import paillier as fu

        self._sk, self._pk, self._coder = fu.keygen(bits)

    def encrypt(self, values: np.ndarray) -> object:
        return self._pk.encrypt_encoded(self._coder.encode_i64_vec(np.asarray(values, dtype=np.int64)), True)

    def decrypt(self, batch: object) -> Sequence[int]:
        return self._coder.decode_i64_vec(self._sk.decrypt_to_encoded(batch))

    def add(self, a: object, b: object) -> object:
        return a.add(self._pk, b)

    def tile(self, batch: object, size: int, count: int) -> object:
        return batch.slice_indexes([i % size for i in range(count)])


PEERS: tuple[type[Peer], ...] = (HeuZPaillier, PyPaillier, FateUtils)


def importable(peer: type[Peer]) -> str | None:
    """None when the peer's module imports, else why not."""
    if importlib.util.find_spec(peer.module) is None:
        return f"not installed (pip install {'--pre ' if peer.name == 'sf-heu' else ''}{peer.name})"
    try:
        importlib.import_module(peer.module)
    except Exception as exc:  # an ImportError, or a broken binary wheel (OSError, ...)
        return f"does not import: {type(exc).__name__}: {exc}"
    return None


def available() -> list[type[Peer]]:
    """The peers whose modules import here."""
    return [peer for peer in PEERS if importable(peer) is None]


def check(peer: Peer, rng: np.random.Generator | None = None) -> None:
    """Raises PeerError unless the peer decrypts what it encrypts, adds correctly and tiles correctly."""
    rng = rng or np.random.default_rng()
    a = np.concatenate([[0, 1, 2**62 - 1], rng.integers(0, 2**62, size=5)]).astype(np.int64)
    b = rng.integers(0, 2**62, size=a.size, dtype=np.int64)
    enc_a, enc_b = peer.encrypt(a), peer.encrypt(b)
    got = [int(m) for m in peer.decrypt(enc_a)]
    if got != a.tolist():
        raise PeerError(f"{peer.title()}: decrypt(encrypt(m)) != m ({got[:3]} ... for {a[:3].tolist()} ...)")
    sums = [int(m) for m in peer.decrypt(peer.add(enc_a, enc_b))]
    if sums != [int(x) + int(y) for x, y in zip(a, b)]:
        raise PeerError(f"{peer.title()}: decrypt(encrypt(a) + encrypt(b)) != a + b")
    tiled = [int(m) for m in peer.decrypt(peer.tile(enc_a, a.size, 2 * a.size + 3))]
    if tiled != np.resize(a, 2 * a.size + 3).tolist():
        raise PeerError(f"{peer.title()}: tile() does not repeat the batch")


@dataclass
class PeerWork:
    """The inputs of one peer's timed calls, built (untimed) once."""

    values: np.ndarray     # int64 plaintexts to encrypt
    encrypted: object      # their encryptions, to decrypt
    add_a: object          # addition operands, add_count each
    add_b: object
    add_count: int


def make_work(peer: Peer, values: np.ndarray, add_count: int, distinct: int = 32) -> PeerWork:
    """Encryptions of `values`, and addition operands tiled from `distinct` fresh encryptions each."""
    rng = np.random.default_rng()
    distinct = max(1, min(distinct, add_count))
    add_a = peer.tile(peer.encrypt(rng.integers(0, 2**62, size=distinct, dtype=np.int64)), distinct, add_count)
    add_b = peer.tile(peer.encrypt(rng.integers(0, 2**62, size=distinct, dtype=np.int64)), distinct, add_count)
    return PeerWork(values, peer.encrypt(values), add_a, add_b, add_count)


def operations(peer: Peer, work: PeerWork) -> list[tuple[str, Callable[[], object], int]]:
    """(operation, call, items per call) for encrypt, decrypt and add."""
    return [
        ("encrypt", lambda: peer.encrypt(work.values), int(work.values.size)),
        ("decrypt", lambda: peer.decrypt(work.encrypted), int(work.values.size)),
        ("add", lambda: peer.add(work.add_a, work.add_b), work.add_count),
    ]


def load(bits: int, progress: Callable[[str], None] | None = None) -> tuple[list[Peer], dict[str, str]]:
    """Every importable peer with a fresh key of `bits` bits that passed `check`, and why others were left out."""
    ready, left_out = [], {}
    for cls in PEERS:
        reason = importable(cls)
        if reason is not None:
            left_out[cls.name] = reason
            continue
        if progress is not None:
            progress(f"peer {cls.title()}: {bits}-bit key and correctness check ...")
        try:
            peer = cls(bits)
            check(peer)
        except Exception as exc:  # a peer that fails is reported and left out, never measured
            left_out[cls.name] = f"{type(exc).__name__}: {exc}"
            continue
        ready.append(peer)
    return ready, left_out


# ---- the peers' table (bench_crypto.py) --------------------------------------------------------

def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table(peers: Sequence[Peer], fp_times: Mapping[str, float], peer_times: Mapping[tuple[str, str], float],
          references: Mapping[str, Mapping[str, float]] | None = None) -> list[list[str]]:
    """Header and rows: one row per operation, fastpaillier's time, then each library's time and its
    ratio to fastpaillier's (library time / fastpaillier time: above 1x fastpaillier is faster).

    fp_times: operation -> seconds per item (1 thread); peer_times: (peer name, operation) -> seconds
    per item; references: other libraries measured in the same run (phe), title -> operation -> seconds.
    """
    references = dict(references or {})
    columns = [*references, *(p.title() for p in peers)]
    times = {**references, **{p.title(): {op: peer_times.get((p.name, op)) for op in OPERATIONS} for p in peers}}
    header = ["operation (1 thread)", "fastpaillier", *columns]
    rows = [header]
    for op in OPERATIONS:
        fp = fp_times.get(op)
        row = [ROW_TITLES[op], fmt_time(fp) + (" (DJN)" if op == "encrypt" and fp is not None else "")]
        for title in columns:
            t = times[title].get(op)
            if t is None:
                row.append("-")
            elif fp:
                row.append(f"{fmt_time(t)} ({t / fp:.2f}x)")
            else:
                row.append(fmt_time(t))
        rows.append(row)
    return rows


def render(peers: Sequence[Peer], left_out: Mapping[str, str], fp_times: Mapping[str, float],
           peer_times: Mapping[tuple[str, str], float], bits: int, batches: str,
           references: Mapping[str, Mapping[str, float]] | None = None, markdown: bool = False) -> str:
    """The peers' table with its notes, as text or Markdown."""
    cells = table(peers, fp_times, peer_times, references)
    notes = [
        f"{bits}-bit keys (each library its own), 1 thread everywhere, measured in the same interleaved rounds "
        f"as the table above; {batches}.",
        "(r x): the library's time / fastpaillier's, so above 1x fastpaillier is faster. fastpaillier's "
        f"encrypt is its fastest public-key encryption ({FASTPAILLIER_ROWS['encrypt']!r}), since every peer "
        "encrypts with the public key.",
        *(f"{p.title()}: {p.setting}." for p in peers),
        *(f"{name}: left out, {why}." for name, why in left_out.items()),
    ]
    title = "fastpaillier vs peer libraries (optional installs)"
    if markdown:
        lines = [f"## {title}", "", "| " + " | ".join(cells[0]) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(cells[0]) - 1)) + "|",
                 *("| " + " | ".join(row) + " |" for row in cells[1:]), "", *(f"- {n}" for n in notes)]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([title, "", *lines, "", *(f"* {n}" for n in notes)])
