"""The peer libraries (peers.py) beside fastpaillier: encrypt, decrypt and add on 1 thread.

    pip install --pre sf-heu; pip install pypaillier fate-utils     # any of them, optional
    pytest benchmarks/ --benchmark-only

Each peer's benchmarks are skipped unless it imports.  They join the tables of test_bench_crypto.py
(same titles, same batch sizes), so each table shows fastpaillier, phe and every installed peer
measured in the same run.  Each peer has its own key of --bench-bits bits (made once per session,
then checked: it must decrypt what it encrypts and add correctly) and runs at its fastest
comparable setting on one thread, which extra_info["setting"] names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import peers as peerlib

PEER_IDS = [peer.name for peer in peerlib.PEERS]


@pytest.fixture(scope="module", params=peerlib.PEERS, ids=PEER_IDS)
def peer(request: pytest.FixtureRequest, settings: Any) -> peerlib.Peer:
    """A checked instance of one peer with its key, or a skip where it is not installed."""
    cls = request.param
    pytest.importorskip(cls.module, reason=f"{cls.name} is not installed (optional: see benchmarks/peers.py)")
    try:
        instance = cls(settings.bits)
    except Exception as exc:  # e.g. a key size the peer refuses
        pytest.skip(f"{cls.title()} cannot make a {settings.bits}-bit key: {type(exc).__name__}: {exc}")
    peerlib.check(instance)  # a wrong result fails here, before anything is timed
    return instance


@pytest.fixture(scope="module")
def peer_work(peer: peerlib.Peer, settings: Any) -> peerlib.PeerWork:
    values = np.random.default_rng().integers(0, 2**62, size=settings.encrypt_batch, dtype=np.int64)
    return peerlib.make_work(peer, values, settings.add_batch)


def _extra(peer: peerlib.Peer) -> dict[str, Any]:
    return dict(library=peer.title(), setting=peer.setting, threads=peerlib.PEER_THREADS)


def test_encrypt(measure, settings, peer, peer_work):
    out = measure(lambda: peer.encrypt(peer_work.values), group=settings.group("encrypt"),
                  items=peer_work.values.size, **_extra(peer))
    assert [int(m) for m in peer.decrypt(out)] == peer_work.values.tolist()


def test_decrypt(measure, settings, peer, peer_work):
    # peer_work.encrypted holds encrypt_batch ciphertexts; the table's batch is decrypt_batch
    batch = peer.tile(peer_work.encrypted, peer_work.values.size, settings.decrypt_batch)
    expected = np.resize(peer_work.values, settings.decrypt_batch).tolist()
    out = measure(lambda: peer.decrypt(batch), group=settings.group("decrypt"), items=settings.decrypt_batch,
                  **_extra(peer))
    assert [int(m) for m in out] == expected


def test_add(measure, settings, peer, peer_work):
    out = measure(lambda: peer.add(peer_work.add_a, peer_work.add_b), group=settings.group("add"),
                  items=peer_work.add_count, unit="pairs", **_extra(peer))
    def head(batch: object) -> list[int]:  # the first 8 plaintexts (decrypting all would take seconds)
        return [int(m) for m in peer.decrypt(peer.tile(batch, peer_work.add_count, 8))]

    assert head(out) == [x + y for x, y in zip(head(peer_work.add_a), head(peer_work.add_b))]
