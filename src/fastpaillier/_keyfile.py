"""Key files: written whole to a fresh file and renamed into place; read with a size bound."""

from __future__ import annotations

import os
import secrets
import stat

from .errors import InvalidArgumentError, SerializationError

# No valid key comes near this (a 16384-bit private key with h and h_s is about 10 KB): load()
# reads at most this many bytes, so pointing it at a huge file or a device costs nothing.
MAX_KEY_FILE_BYTES = 1 << 16

PRIVATE_KEY_MODE = 0o600
PUBLIC_KEY_MODE = 0o644

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def write_key_file(path: str | os.PathLike, data: bytes, mode: int, *, exact_mode: bool) -> None:
    """Replaces path by a new file holding data, so a reader sees the old key or the new one, whole.

    The bytes go to a temporary file in path's directory, created with O_CREAT | O_EXCL |
    O_NOFOLLOW and `mode` (forced with fchmod when exact_mode, whatever the umask), fsynced,
    renamed over path (a symlink at path is replaced, never followed) and the directory
    fsynced.  Descriptors open on the old file keep reading the old key.
    """
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    directory, name = os.path.split(os.path.abspath(path))
    if not name or path.endswith(os.sep):
        raise InvalidArgumentError(f"path must name a file, got {path!r}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:  # a name taken by chance (or planted): draw another
            continue
    try:
        try:
            if exact_mode:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Makes the rename durable: fsync of the directory that holds the new name."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_key_file(path: str | os.PathLike, what: str) -> bytes:
    """The bytes of a regular file of at most MAX_KEY_FILE_BYTES; SerializationError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)  # (non-blocking: a FIFO must not hang)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SerializationError(f"{what} file {os.fspath(path)!r} is not a regular file")
        chunks = []
        left = MAX_KEY_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise SerializationError(
            f"{what} file {os.fspath(path)!r} exceeds {MAX_KEY_FILE_BYTES} bytes; no key is that large "
            "(is it a key file?)")
    return data
