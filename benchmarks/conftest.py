"""pytest-benchmark suites of fastpaillier, its references and its peers, and of one federated round.

    pip install pytest-benchmark            # or: pip install '.[bench]'
    pytest benchmarks/ --benchmark-only     # one table per operation
    pytest benchmarks/ --benchmark-only --benchmark-autosave      # saves .benchmarks/<machine>/0001_*.json
    pytest benchmarks/ --benchmark-only --benchmark-compare       # beside the last saved run
    pytest benchmarks/ --benchmark-only --benchmark-compare=0001 --benchmark-compare-fail=min:10%

Options of this directory: --bench-bits (key size, default 2048), --bench-threads (the threads=
argument of every fastpaillier call, and the thread count of the FL round; default 1) and
--bench-rounds (timed calls per benchmark after one warm-up call; default 3).

Every benchmark times one call on a whole batch (pedantic: `--bench-rounds` rounds of 1
iteration after 1 warm-up round), so the table's times are per batch; the benchmarks of one table
share the batch size its title names, and each benchmark's extra_info (saved with
--benchmark-autosave) holds the time per ciphertext or value.  Each table's title names the
kernel tier fastpaillier ran on (IFMA, AVX2, mulx, portable or GMP; FASTPAILLIER_KERNEL forces one), the
key size and the thread count; the tier is also saved in machine_info, so comparing runs of
different tiers warns as pytest-benchmark does for any change of machine.

The peers (sf-heu, pypaillier, fate-utils; see peers.py) are optional installs: each one's
benchmarks are skipped unless it imports, and join the same tables as fastpaillier and phe.
`python -m pytest` from the repository root does not collect this directory (testpaths = tests).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # machine.py, peers.py
try:
    import fastpaillier as fp
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(HERE.parent / "src"))
    import fastpaillier as fp

import peers as peerlib  # first: holds the peers' thread pools to 1 thread before any of them starts
from machine import cpu_model, kernel_tier_label, kernel_tier_name, kernel_tier_note

HAVE_PYTEST_BENCHMARK = importlib.util.find_spec("pytest_benchmark") is not None
if not HAVE_PYTEST_BENCHMARK:  # nothing here runs without the benchmark fixture
    collect_ignore_glob = ["test_*.py"]

DEFAULT_BITS = 2048
DEFAULT_THREADS = 1
DEFAULT_ROUNDS = 3

# Table titles (pytest-benchmark groups); every benchmark of one table processes the same batch.
GROUP_TITLES = {
    "encrypt": "encrypt: {encrypt_batch} ciphertexts per call",
    "decrypt": "decrypt: {decrypt_batch} ciphertexts per call",
    "add": "add ciphertext + ciphertext: {add_batch} pairs per call",
    "multiply": "multiply by a 32-bit scalar: {multiply_batch} ciphertexts per call",
    "packed encrypt": "packed encrypt: {values} values ({packed_ciphertexts} ciphertexts) per call",
    "packed decrypt": "packed decrypt: {values} values ({packed_ciphertexts} ciphertexts) per call",
    "fl round": "federated round: {model}, {clients} clients, one local epoch on {images} images each",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastpaillier benchmarks")
    group.addoption("--bench-bits", type=int, default=DEFAULT_BITS,
                    help=f"key size of the benchmarks in benchmarks/ (default {DEFAULT_BITS})")
    group.addoption("--bench-threads", type=int, default=DEFAULT_THREADS,
                    help=f"threads= of every fastpaillier call, and the FL round's threads (default {DEFAULT_THREADS})")
    group.addoption("--bench-rounds", type=int, default=DEFAULT_ROUNDS,
                    help=f"timed calls per benchmark, after one warm-up call (default {DEFAULT_ROUNDS})")


@dataclass(frozen=True)
class BenchSettings:
    """What every benchmark of the session runs with, and the batch sizes of each table."""

    bits: int
    threads: int
    rounds: int
    tier: str
    encrypt_batch: int = 16        # ciphertexts per encryption call
    decrypt_batch: int = 16        # ciphertexts per decryption call
    add_batch: int = 512           # ciphertext pairs per addition call
    multiply_batch: int = 16       # ciphertexts per scalar multiplication call
    packed_ciphertexts: int = 8    # full ciphertexts of packed values per call

    @property
    def tier_label(self) -> str:
        return kernel_tier_label(self.tier)

    @property
    def insecure(self) -> bool:
        return self.bits < fp.MIN_SECURE_BITS

    def group(self, operation: str, **values: Any) -> str:
        """The title of an operation's table (GROUP_TITLES), filled with the batch sizes and `values`."""
        return GROUP_TITLES[operation].format(**dataclasses.asdict(self), **values)


def _settings(config: pytest.Config) -> BenchSettings:
    bits = config.getoption("bench_bits", DEFAULT_BITS)
    threads = config.getoption("bench_threads", DEFAULT_THREADS)
    rounds = config.getoption("bench_rounds", DEFAULT_ROUNDS)
    if bits % 2 or bits < 16:
        raise pytest.UsageError(f"--bench-bits must be an even number >= 16, got {bits}")
    if threads < 1 or rounds < 1:
        raise pytest.UsageError("--bench-threads and --bench-rounds must be >= 1")
    return BenchSettings(bits=bits, threads=threads, rounds=rounds, tier=kernel_tier_name())


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> BenchSettings:
    return _settings(pytestconfig)


@dataclass
class Keys:
    """One fastpaillier key pair, classic and with a DJN base (the same p, q)."""

    pk: fp.PublicKey
    sk: fp.PrivateKey
    djn_pk: fp.PublicKey
    djn_sk: fp.PrivateKey


@pytest.fixture(scope="session")
def fp_keys(settings: BenchSettings) -> Keys:
    """The session's key, made once."""
    pk, sk = fp.generate_keypair(settings.bits, insecure=settings.insecure)
    djn_sk = sk.with_djn()
    return Keys(pk, sk, djn_sk.public_key, djn_sk)


Measure = Callable[..., Any]


@pytest.fixture
def measure(benchmark: Any, settings: BenchSettings) -> Measure:
    """measure(fn, group=, items=, library=, setting=, unit=, threads=, rounds=) -> fn's last result.

    Times `rounds` calls of fn (after one warm-up call), puts the benchmark in table `group`, and
    records in extra_info the library, its setting, the kernel tier, the key size, the threads, the
    batch size and the time per item (best and mean call over `items`).
    """
    def run(fn: Callable[[], Any], *, group: str, items: int, library: str = "fastpaillier",
            setting: str = "", unit: str = "ciphertexts", threads: int | None = None,
            rounds: int | None = None, **extra: Any) -> Any:
        benchmark.group = group
        benchmark.extra_info.update(
            library=library, setting=setting, kernel_tier=settings.tier, key_bits=settings.bits,
            threads=settings.threads if threads is None else threads, batch=items, batch_unit=unit, **extra)
        result = benchmark.pedantic(fn, rounds=rounds or settings.rounds, iterations=1, warmup_rounds=1)
        stats = getattr(getattr(benchmark, "stats", None), "stats", None)
        if stats is not None and items:
            benchmark.extra_info["per_item_s"] = stats.min / items
            benchmark.extra_info["per_item_mean_s"] = stats.mean / items
        return result
    return run


# ---- what the tables and the saved runs say about the run ------------------------------------

def _peer_versions() -> dict[str, str | None]:
    return {peer.name: (peer.version() if peerlib.importable(peer) is None else None) for peer in peerlib.PEERS}


def _environment_lines(config: pytest.Config) -> list[str]:
    s = _settings(config)
    forced = os.environ.get("FASTPAILLIER_KERNEL")
    peers = ", ".join(f"{name} {version}" if version else f"{name} (not installed)"
                      for name, version in _peer_versions().items())
    return [
        f"fastpaillier {fp.__version__} ({Path(fp.__file__).parent}): kernel tier {s.tier_label} "
        f"({kernel_tier_note(s.tier)})" + (f", FASTPAILLIER_KERNEL={forced}" if forced else ""),
        f"CPU: {cpu_model()}, {os.cpu_count()} CPUs; keys: {s.bits} bits; threads: {s.threads}; "
        f"{s.rounds} timed calls per benchmark after 1 warm-up",
        f"peers (1 thread each, optional): {peers}",
    ]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return _environment_lines(config)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The same lines above the benchmark tables (the header is hidden by -q, this project's default)."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not getattr(session, "benchmarks", None):
        return
    terminalreporter.write_sep("-", "fastpaillier benchmark environment")
    for line in _environment_lines(config):
        terminalreporter.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Saved with every run: a change of tier, key size or thread count shows when runs are compared."""
    s = _settings(config)
    machine_info["cpu_model"] = cpu_model()
    machine_info["fastpaillier"] = {
        "version": fp.__version__, "kernel_tier": s.tier, "kernel_tier_label": s.tier_label,
        "FASTPAILLIER_KERNEL": os.environ.get("FASTPAILLIER_KERNEL"), "key_bits": s.bits, "threads": s.threads,
    }
    machine_info["peers"] = _peer_versions()


_saved_tiers: dict[str, str] = {}


def _saved_tier(config: pytest.Config, path: str) -> str:
    """The kernel tier a saved run ran on, from its JSON file (path: relative to the storage folder)."""
    if path not in _saved_tiers:
        storage = getattr(getattr(config, "_benchmarksession", None), "storage", None)
        base = getattr(storage, "path", None)
        candidates = ([Path(base) / path] if base is not None else []) + [Path(path)]
        _saved_tiers[path] = "unknown tier"
        for candidate in candidates:
            try:
                info = json.loads(candidate.read_text())["machine_info"]["fastpaillier"]
                _saved_tiers[path] = kernel_tier_label(info["kernel_tier"])
                break
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return _saved_tiers[path]


def _group_title(config: pytest.Config, name: str, benchmarks: list[dict]) -> str:
    """'encrypt ... | kernel tier mulx | 2048-bit keys, 1 thread', with the saved runs' tiers when compared."""
    now = [b.get("extra_info") or {} for b in benchmarks if not b.get("path")]
    info = next((i for i in now if i.get("library") == "fastpaillier"), now[0] if now else {})
    tier = kernel_tier_label(info["kernel_tier"]) if "kernel_tier" in info else kernel_tier_label()
    saved = {}
    for b in benchmarks:
        if b.get("path"):
            saved.setdefault(_saved_tier(config, b["path"]), []).append(Path(b["path"]).name.split("_")[0])
    if saved and set(saved) != {tier}:
        tiers = f"kernel tier {tier} (NOW); " + "; ".join(f"{t} ({', '.join(sorted(set(src)))})"
                                                          for t, src in saved.items())
    else:
        tiers = f"kernel tier {tier}"
    where = f"{info['key_bits']}-bit keys" if "key_bits" in info else ""
    threads = sorted({i["threads"] for i in now if "threads" in i})
    if len(threads) == 1:
        where += f", {threads[0]} thread{'s' if threads[0] != 1 else ''}"
    elif threads:
        where += f", fastpaillier on {info.get('threads')} threads, the others on 1"
    return " | ".join(part for part in (name, tiers, where) if part)


@pytest.hookimpl(hookwrapper=True, optionalhook=True)
def pytest_benchmark_group_stats(config: pytest.Config, benchmarks: list[dict], group_by: str) -> Any:
    """Every table's title names the kernel tier (and key size, threads) it was measured with."""
    outcome = yield
    groups = outcome.get_result()
    outcome.force_result([(name if name is None else _group_title(config, name, list(benches)), benches)
                          for name, benches in groups])
