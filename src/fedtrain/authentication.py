"""Per-client signatures: who sealed a decrypted slice, a training report or a global model.

The clients share one Paillier key pair and the AES-GCM sealing key derived from it,
so a seal alone proves only that *some* key holder made a blob.  Each client also holds
its own Ed25519 signing key, derived by the run's dealer (whoever made the Paillier
keys) with HKDF-SHA256 from a dealer secret and the client id; the dealer hands each
client only its own signing key and everyone the table of public verification keys.
A key derived from a secret that every client holds (the Paillier key) would let any
client derive any other's, so the dealer secret is never given to a client.

A signed blob is `payload || u32 signer || Ed25519(context || u32 signer || payload)`,
so one client cannot make a blob that verifies as another's, and the server, which
holds only the public table, can check who signed what without reading it.
"""

from __future__ import annotations

import json
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigError, ProtocolError

_SIGNER = struct.Struct("<I")
SIGNATURE_BYTES = 64
OVERHEAD = _SIGNER.size + SIGNATURE_BYTES  # bytes a signature adds to a blob
DEALER_SECRET_BYTES = 32


class Signer:
    """One client's Ed25519 signing key; only that client holds it."""

    def __init__(self, cid: int, key: Ed25519PrivateKey) -> None:
        self.cid = cid
        self._key = key

    def public(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def to_bytes(self) -> bytes:
        """The 32-byte Ed25519 private key, to hand to this client only (a file of mode 0600)."""
        return self._key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())

    @classmethod
    def from_bytes(cls, cid: int, data: bytes) -> "Signer":
        """Client `cid`'s signer from to_bytes()."""
        if len(data) != 32:
            raise ConfigError(f"a signing key is 32 bytes, got {len(data)}")
        return cls(cid, Ed25519PrivateKey.from_private_bytes(data))

    def sign(self, payload: bytes, context: str) -> bytes:
        """`payload` with this client's id and signature appended, bound to `context`."""
        signer = _SIGNER.pack(self.cid)
        return payload + signer + self._key.sign(context.encode() + b"\x00" + signer + payload)


class Verifiers:
    """The public verification keys of every client of a run (safe to give to anyone, the server included)."""

    def __init__(self, keys: dict[int, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    def to_json(self) -> str:
        """The table as JSON: {"client id": "hex of the 32-byte public key"}."""
        raw = {str(cid): key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
               for cid, key in sorted(self._keys.items())}
        return json.dumps({"ed25519": raw}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Verifiers":
        """The table written by to_json(); ConfigError if it is not one."""
        try:
            raw = json.loads(text)["ed25519"]
            return cls({int(cid): Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)) for cid, key in raw.items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"not a table of verification keys: {exc}") from None

    def open(self, blob: bytes, context: str, *, allowed: set[int] | None = None) -> tuple[int, bytes]:
        """(signer id, payload) of a signed blob; ProtocolError unless a client in `allowed` signed it for `context`."""
        if len(blob) < OVERHEAD:
            raise ProtocolError(f"signed blob for {context} is too short to carry a signature")
        payload, signer_bytes = blob[:-OVERHEAD], blob[-OVERHEAD:-SIGNATURE_BYTES]
        (signer,) = _SIGNER.unpack(signer_bytes)
        key = self._keys.get(signer)
        if key is None or (allowed is not None and signer not in allowed):
            raise ProtocolError(f"blob for {context} is signed by client {signer}, expected one of "
                                f"{sorted(allowed) if allowed is not None else sorted(self._keys)}")
        try:
            key.verify(blob[-SIGNATURE_BYTES:], context.encode() + b"\x00" + signer_bytes + payload)
        except InvalidSignature:
            raise ProtocolError(f"blob for {context} fails client {signer}'s signature (forged, altered or "
                                "signed for another purpose)") from None
        return signer, payload


def new_dealer_secret() -> bytes:
    """A fresh dealer secret (32 random bytes) from which the clients' signing keys are derived."""
    import secrets

    return secrets.token_bytes(DEALER_SECRET_BYTES)


def derive_signer(dealer_secret: bytes, *, run_id: str, cid: int) -> Signer:
    """Client `cid`'s signing key: Ed25519 from HKDF-SHA256(dealer secret, run id, client id)."""
    if len(dealer_secret) != DEALER_SECRET_BYTES:
        raise ConfigError(f"the dealer secret must be {DEALER_SECRET_BYTES} bytes, got {len(dealer_secret)}")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"fedtrain sign v1",
                info=f"{run_id}|client:{cid}".encode())
    return Signer(cid, Ed25519PrivateKey.from_private_bytes(hkdf.derive(dealer_secret)))


def derive_all(dealer_secret: bytes, *, run_id: str, num_clients: int) -> tuple[dict[int, Signer], Verifiers]:
    """Every client's signer (each to be handed to its client only) and the public table."""
    signers = {cid: derive_signer(dealer_secret, run_id=run_id, cid=cid) for cid in range(num_clients)}
    return signers, Verifiers({cid: s.public() for cid, s in signers.items()})
