"""Authenticated encryption among the key-holding clients, keyed from their shared Paillier private key.

The clients of the paper's setting share one Paillier key pair; the server holds
only the public key.  Plaintexts that clients must pass to each other through the
server (slices of the decrypted aggregate, the global model, training reports)
are sealed with AES-256-GCM under a key derived by HKDF-SHA256 from the private
key's bytes, so the server relays them without learning anything but their sizes.
`SignedSealing` adds the sealing client's own signature (fedtrain.authentication),
so that one client cannot pass a blob off as another's.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fastpaillier import PrivateKey

from .authentication import Signer, Verifiers
from .errors import ProtocolError

_NONCE_BYTES = 12


class SealingKey:
    """AES-256-GCM key shared by the clients; the server never has it."""

    def __init__(self, private_key: PrivateKey, *, run_id: str) -> None:
        if not isinstance(private_key, PrivateKey):
            raise TypeError(f"a SealingKey is derived from a fastpaillier.PrivateKey, not a "
                            f"{type(private_key).__name__} (the server cannot make one)")
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=private_key.public_key.fingerprint,
                    info=b"fedtrain seal v1|" + run_id.encode())
        self._aead = AESGCM(hkdf.derive(private_key.to_bytes()))

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """nonce || AES-GCM(plaintext), bound to `context` (purpose, round, slice) as associated data."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        """The plaintext of `sealed`; ProtocolError if it was altered or sealed for another context."""
        if len(sealed) < _NONCE_BYTES + 16:
            raise ProtocolError(f"sealed blob for {context} is too short")
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise ProtocolError(f"sealed blob for {context} fails authentication (altered, replayed or "
                                "sealed under another key)") from None


class SignedSealing:
    """Sealing among the key holders plus one client's signature: who sealed a blob, not only that a key holder did."""

    def __init__(self, sealing: SealingKey, verifiers: Verifiers, signer: Signer | None = None) -> None:
        self.sealing = sealing
        self.verifiers = verifiers
        self.signer = signer

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """The AES-GCM seal of `plaintext`, signed by this client, both bound to `context`."""
        if self.signer is None:
            raise ProtocolError("this key holder has no signing key (it verifies only)")
        return self.signer.sign(self.sealing.seal(plaintext, context), context)

    def open(self, blob: bytes, context: str, *, allowed: set[int] | None = None) -> bytes:
        """The plaintext of a blob signed by a client in `allowed` (any client if None) and sealed for `context`."""
        return self.open_from(blob, context, allowed=allowed)[1]

    def open_from(self, blob: bytes, context: str, *, allowed: set[int] | None = None) -> tuple[int, bytes]:
        """(signer id, plaintext) of a signed, sealed blob."""
        signer, sealed = self.verifiers.open(blob, context, allowed=allowed)
        return signer, self.sealing.open(sealed, context)
