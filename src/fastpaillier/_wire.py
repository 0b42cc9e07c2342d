"""Primitives of fastpaillier's versioned binary formats.

Every object starts with the same 40-byte header::

    magic   4 bytes  b"FPAI"
    version u8       FORMAT_VERSION
    kind    u8       KIND_PUBLIC_KEY | KIND_PRIVATE_KEY | KIND_ENCRYPTED_ARRAY
    flags   u16      0 (reserved)
    key fingerprint  32 bytes, SHA-256 over the public modulus

followed by a kind-specific body of little-endian fixed-size fields and
length-prefixed (u32) big-endian integers.  Readers reject truncation and
trailing bytes and never allocate more than the input holds.

Key bodies may end with optional extensions, each a u8 tag and a u32-prefixed
big-endian integer, at most one per tag: EXT_DJN_BASE carries the DJN value
h_s of a key with fixed-base randomness.  A key without extensions has the
same bytes as before extensions existed, so every older key still loads;
readers reject unknown tags (so a build without DJN refuses a DJN key as
trailing data instead of silently dropping h_s).  The fingerprint covers n
only: it names the modulus, and ciphertexts made with either kind of
randomness decrypt and combine alike under it.
"""

from __future__ import annotations

import hashlib
import struct

from .errors import SerializationError

MAGIC = b"FPAI"
FORMAT_VERSION = 1
KIND_PUBLIC_KEY = 1
KIND_PRIVATE_KEY = 2
KIND_ENCRYPTED_ARRAY = 3
KIND_NAMES = {KIND_PUBLIC_KEY: "public key", KIND_PRIVATE_KEY: "private key",
              KIND_ENCRYPTED_ARRAY: "encrypted array"}

EXT_DJN_BASE = 1
EXTENSION_NAMES = {EXT_DJN_BASE: "DJN base h_s"}

# Largest summands field of an encrypted array, in bytes: writers refuse larger counts and readers
# never parse more (summands < 2^(8 * MAX_SUMMANDS_BYTES)).
MAX_SUMMANDS_BYTES = 4096

_HEADER = struct.Struct("<4sBBH32s")


def key_fingerprint(n: int) -> bytes:
    """SHA-256 fingerprint of a public modulus, as stored in every header."""
    nbytes = (n.bit_length() + 7) // 8
    return hashlib.sha256(b"fastpaillier/public-key/v1\x00" + n.to_bytes(nbytes, "big")).digest()


def fingerprint_hex(fingerprint: bytes) -> str:
    """A fingerprint as shown in messages: its full hex, so different fingerprints always read differently."""
    return bytes(fingerprint).hex()


def header(kind: int, fingerprint: bytes) -> bytes:
    """The common header for an object of `kind` under the key `fingerprint`."""
    return _HEADER.pack(MAGIC, FORMAT_VERSION, kind, 0, fingerprint)


def u32_bigint(x: int) -> bytes:
    """A non-negative int as u32 length + big-endian bytes."""
    raw = x.to_bytes((x.bit_length() + 7) // 8, "big")
    return struct.pack("<I", len(raw)) + raw


def extension(tag: int, value: int) -> bytes:
    """An optional key-body extension: u8 tag + u32-prefixed big-endian integer."""
    return struct.pack("<B", tag) + u32_bigint(value)


class Reader:
    """Bounds-checked cursor over untrusted bytes."""

    def __init__(self, data: object, what: str) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise SerializationError(f"{what}: expected bytes, got {type(data).__name__}")
        self._data = memoryview(data).cast("B")
        self._pos = 0
        self._what = what

    def take(self, count: int) -> memoryview:
        """The next `count` bytes; raises if fewer remain."""
        if count < 0 or self._pos + count > len(self._data):
            raise SerializationError(
                f"{self._what}: truncated data (need {count} bytes at offset {self._pos}, "
                f"{len(self._data) - self._pos} left)")
        out = self._data[self._pos : self._pos + count]
        self._pos += count
        return out

    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self._data) - self._pos

    def unpack(self, fmt: str) -> tuple:
        """Reads fixed-size little-endian fields."""
        st = struct.Struct("<" + fmt)
        return st.unpack(self.take(st.size))

    def bigint(self, max_bytes: int) -> int:
        """Reads a u32-length-prefixed big-endian integer of at most max_bytes bytes."""
        (length,) = self.unpack("I")
        if length > max_bytes:
            raise SerializationError(f"{self._what}: integer field of {length} bytes exceeds {max_bytes}")
        return int.from_bytes(self.take(length), "big")

    def extensions(self, max_bytes: int) -> dict[int, int]:
        """Reads optional extensions up to the end of the data: tag -> integer."""
        found: dict[int, int] = {}
        while self.remaining():
            (tag,) = self.unpack("B")
            if tag not in EXTENSION_NAMES:
                raise SerializationError(
                    f"{self._what}: unknown extension tag {tag} (trailing or corrupted data, or a newer format)")
            if tag in found:
                raise SerializationError(f"{self._what}: duplicate {EXTENSION_NAMES[tag]} extension")
            found[tag] = self.bigint(max_bytes)
        return found

    def header(self, kind: int) -> bytes:
        """Checks magic, version and kind; returns the key fingerprint."""
        magic, version, got_kind, flags, fingerprint = self.unpack("4sBBH32s")
        if magic != MAGIC:
            raise SerializationError(f"{self._what}: bad magic {bytes(magic)!r}, expected {MAGIC!r}")
        if version != FORMAT_VERSION:
            raise SerializationError(
                f"{self._what}: unsupported format version {version} (this build reads {FORMAT_VERSION})")
        if got_kind != kind:
            raise SerializationError(
                f"{self._what}: data holds a {KIND_NAMES.get(got_kind, f'unknown kind {got_kind}')}, "
                f"expected a {KIND_NAMES[kind]}")
        if flags != 0:
            raise SerializationError(f"{self._what}: unknown flags {flags:#x}")
        return bytes(fingerprint)

    def finish(self) -> None:
        """Raises if any bytes are left over."""
        if self.remaining():
            raise SerializationError(f"{self._what}: {self.remaining()} trailing bytes after the data")
