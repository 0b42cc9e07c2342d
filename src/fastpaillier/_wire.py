"""Primitives of fastpaillier's versioned binary formats.

Every object starts with the same 40-byte header::

    magic   4 bytes  b"FPAI"
    version u8       KEY_FORMAT_VERSION (keys) or ARRAY_FORMAT_VERSION (arrays)
    kind    u8       KIND_PUBLIC_KEY | KIND_PRIVATE_KEY | KIND_ENCRYPTED_ARRAY
    flags   u16      0 (reserved)
    key fingerprint  32 bytes, SHA-256 over the public key (see key_fingerprint)

followed by a kind-specific body of little-endian fixed-size fields and
length-prefixed (u32) big-endian integers.  Readers reject truncation and
trailing bytes and never allocate more than the input holds.

Key bodies (version 2) end with a u8 extension count followed by exactly that
many extensions, each a u8 tag and a u32-prefixed big-endian integer, in
increasing tag order: a key cut anywhere, an extension boundary included, no
longer parses.  A DJN key carries both EXT_DJN_BASE (h_s) and EXT_DJN_H (h,
with h_s = h^n mod n^2, checked on load); a classic key has none.

Version 1 keys (still read) had no count: optional extensions ran to the end
of the data, and a DJN key carried h_s only.  A version 1 key cut just before
its extension reads as the classic key of the same n; a version 1 DJN public
key is refused by default, since its h_s cannot be checked (see keys.py).

The fingerprint of a classic key covers n only (as in version 1, so arrays of
classic keys keep loading); the fingerprint of a DJN key covers n, h and h_s, so
a DJN key whose fingerprint was checked cannot be swapped for another h_s.
"""

from __future__ import annotations

import hashlib
import struct

from .errors import SerializationError

MAGIC = b"FPAI"
KEY_FORMAT_VERSION = 2
KEY_FORMAT_VERSIONS = (1, 2)  # versions the key readers accept
ARRAY_FORMAT_VERSION = 1
ARRAY_FORMAT_VERSIONS = (1,)
KIND_PUBLIC_KEY = 1
KIND_PRIVATE_KEY = 2
KIND_ENCRYPTED_ARRAY = 3
KIND_NAMES = {KIND_PUBLIC_KEY: "public key", KIND_PRIVATE_KEY: "private key",
              KIND_ENCRYPTED_ARRAY: "encrypted array"}

EXT_DJN_BASE = 1
EXT_DJN_H = 2
EXTENSION_NAMES = {EXT_DJN_BASE: "DJN base h_s", EXT_DJN_H: "DJN value h"}
MAX_EXTENSIONS = len(EXTENSION_NAMES)

# Largest summands field of an encrypted array, in bytes: writers refuse larger counts and readers
# never parse more (summands < 2^(8 * MAX_SUMMANDS_BYTES)).
MAX_SUMMANDS_BYTES = 4096

_HEADER = struct.Struct("<4sBBH32s")


def key_fingerprint(n: int, djn: tuple[int, int] | None = None) -> bytes:
    """SHA-256 fingerprint of a public key, as stored in every header.

    Classic keys: over n alone (the version 1 fingerprint).  DJN keys, djn = (h, h_s):
    over n, h and h_s, each u32-length-prefixed, under their own domain string.
    """
    if djn is None:
        nbytes = (n.bit_length() + 7) // 8
        return hashlib.sha256(b"fastpaillier/public-key/v1\x00" + n.to_bytes(nbytes, "big")).digest()
    h, h_s = djn
    return hashlib.sha256(b"fastpaillier/public-key/djn/v2\x00" + u32_bigint(n) + u32_bigint(h)
                          + u32_bigint(h_s)).digest()


def fingerprint_hex(fingerprint: bytes) -> str:
    """A fingerprint as shown in messages: its full hex, so different fingerprints always read differently."""
    return bytes(fingerprint).hex()


def header(kind: int, fingerprint: bytes, version: int | None = None) -> bytes:
    """The common header for an object of `kind` under the key `fingerprint` (current version by default)."""
    if version is None:
        version = ARRAY_FORMAT_VERSION if kind == KIND_ENCRYPTED_ARRAY else KEY_FORMAT_VERSION
    return _HEADER.pack(MAGIC, version, kind, 0, fingerprint)


def u32_bigint(x: int) -> bytes:
    """A non-negative int as u32 length + big-endian bytes."""
    raw = x.to_bytes((x.bit_length() + 7) // 8, "big")
    return struct.pack("<I", len(raw)) + raw


def extension(tag: int, value: int) -> bytes:
    """An optional key-body extension: u8 tag + u32-prefixed big-endian integer."""
    return struct.pack("<B", tag) + u32_bigint(value)


def extensions(values: dict[int, int]) -> bytes:
    """A version 2 extension block: u8 count, then the extensions in increasing tag order."""
    return struct.pack("<B", len(values)) + b"".join(extension(t, values[t]) for t in sorted(values))


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

    @property
    def what(self) -> str:
        """What the data is said to be, as named in error messages."""
        return self._what

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
        """Version 2: a u8 count, then exactly that many extensions in increasing tag order."""
        (count,) = self.unpack("B")
        if count > MAX_EXTENSIONS:
            raise SerializationError(
                f"{self._what}: {count} extensions declared, this format has at most {MAX_EXTENSIONS}")
        found: dict[int, int] = {}
        last = -1
        for _ in range(count):
            tag = self._extension_tag(found)
            if tag < last:
                raise SerializationError(f"{self._what}: extensions out of order (tag {tag} after {last})")
            last = tag
            found[tag] = self.bigint(max_bytes)
        return found

    def legacy_extensions(self, max_bytes: int) -> dict[int, int]:
        """Version 1: optional extensions up to the end of the data (no count)."""
        found: dict[int, int] = {}
        while self.remaining():
            tag = self._extension_tag(found, legacy=True)  # (a subscript target would be read after the value)
            found[tag] = self.bigint(max_bytes)
        return found

    def _extension_tag(self, found: dict[int, int], legacy: bool = False) -> int:
        (tag,) = self.unpack("B")
        if tag not in EXTENSION_NAMES or (legacy and tag != EXT_DJN_BASE):
            raise SerializationError(
                f"{self._what}: unknown extension tag {tag} (trailing or corrupted data, or a newer format)")
        if tag in found:
            raise SerializationError(f"{self._what}: duplicate {EXTENSION_NAMES[tag]} extension")
        return tag

    def header(self, kind: int, versions: tuple[int, ...] | None = None) -> tuple[bytes, int]:
        """Checks magic, version and kind; returns (key fingerprint, format version)."""
        if versions is None:
            versions = ARRAY_FORMAT_VERSIONS if kind == KIND_ENCRYPTED_ARRAY else KEY_FORMAT_VERSIONS
        magic, version, got_kind, flags, fingerprint = self.unpack("4sBBH32s")
        if magic != MAGIC:
            raise SerializationError(f"{self._what}: bad magic {bytes(magic)!r}, expected {MAGIC!r}")
        if got_kind != kind:
            raise SerializationError(
                f"{self._what}: data holds a {KIND_NAMES.get(got_kind, f'unknown kind {got_kind}')}, "
                f"expected a {KIND_NAMES[kind]}")
        if version not in versions:
            readable = " and ".join(str(v) for v in versions)
            raise SerializationError(
                f"{self._what}: unsupported format version {version} (this build reads {readable})")
        if flags != 0:
            raise SerializationError(f"{self._what}: unknown flags {flags:#x}")
        return bytes(fingerprint), version

    def finish(self) -> None:
        """Raises if any bytes are left over."""
        if self.remaining():
            raise SerializationError(f"{self._what}: {self.remaining()} trailing bytes after the data")
