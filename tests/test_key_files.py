"""Key files (issue 10, item 5): written to a fresh file and renamed, never through a symlink, fsynced,
with their mode set on creation; truncated files never load; load() reads a bounded amount."""

from __future__ import annotations

import os
import stat

import pytest

import fastpaillier as fp


@pytest.fixture(scope="module")
def djn_keys(small_keys):
    sk = small_keys[1].with_djn()
    return sk.public_key, sk


def _both(small_keys, djn_keys):
    """(key, loader) for each kind of key."""
    pk, sk = small_keys
    dpk, dsk = djn_keys
    return [(k, type(k).load) for k in (pk, sk, dpk, dsk)]


def test_save_replaces_a_symlink_instead_of_following_it(small_keys, tmp_path):
    _, sk = small_keys
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not yours")
    link = tmp_path / "priv.key"
    link.symlink_to(target)
    sk.save(link)
    assert target.read_bytes() == b"not yours"  # the link's target is untouched
    assert not link.is_symlink() and link.read_bytes() == sk.to_bytes()
    assert stat.S_IMODE(os.lstat(link).st_mode) == 0o600
    dangling = tmp_path / "dangling.pub"
    dangling.symlink_to(tmp_path / "missing")
    small_keys[0].save(dangling)
    assert not (tmp_path / "missing").exists() and not dangling.is_symlink()


def test_an_open_descriptor_keeps_reading_the_old_key(small_keys, djn_keys, tmp_path):
    _, sk = small_keys
    _, dsk = djn_keys
    path = tmp_path / "key"
    sk.save(path)
    with open(path, "rb") as old:
        dsk.save(path)
        assert old.read() == sk.to_bytes()
    assert fp.PrivateKey.load(path, insecure=True) == dsk


def test_modes_on_creation(small_keys, tmp_path):
    pk, sk = small_keys
    old_umask = os.umask(0)
    try:
        sk.save(tmp_path / "priv")
        pk.save(tmp_path / "pub")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / "priv").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "pub").st_mode) == 0o644
    old_umask = os.umask(0o077)
    try:
        pk.save(tmp_path / "pub2")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / "pub2").st_mode) == 0o600  # the umask still applies to public keys


def test_temporary_file_is_exclusive_and_not_followed(small_keys, tmp_path, monkeypatch):
    _, sk = small_keys
    seen = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        seen.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    sk.save(tmp_path / "k")
    monkeypatch.undo()
    tmp, flags, mode = seen[0]
    assert os.path.dirname(tmp) == str(tmp_path) and tmp != str(tmp_path / "k")
    assert flags & os.O_CREAT and flags & os.O_EXCL and flags & os.O_NOFOLLOW and mode == 0o600
    assert not flags & os.O_TRUNC
    assert os.listdir(tmp_path) == ["k"]  # nothing left behind


def test_save_fsyncs_the_file_and_the_directory(small_keys, tmp_path, monkeypatch):
    _, sk = small_keys
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    sk.save(tmp_path / "k")
    sk.public_key.save(tmp_path / "p")
    assert synced == [False, True, False, True]  # file, then its directory after the rename


def test_a_failed_save_leaves_the_old_file_and_no_temporary(small_keys, djn_keys, tmp_path, monkeypatch):
    _, sk = small_keys
    _, dsk = djn_keys
    path = tmp_path / "k"
    sk.save(path)

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        dsk.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == sk.to_bytes() and os.listdir(tmp_path) == ["k"]
    with pytest.raises(IsADirectoryError):
        sk.save(tmp_path)  # a directory is not replaced
    assert os.listdir(tmp_path) == ["k"]


def test_every_truncation_of_a_saved_key_is_refused(small_keys, djn_keys, tmp_path):
    for key, load in _both(small_keys, djn_keys):
        path = tmp_path / "key"
        key.save(path)
        data = path.read_bytes()
        assert load(path, insecure=True) == key
        for cut in range(len(data)):
            path.write_bytes(data[:cut])
            with pytest.raises(fp.SerializationError):
                load(path, insecure=True)


def test_load_reads_a_bounded_amount(small_keys, tmp_path):
    pk, sk = small_keys
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.write(pk.to_bytes())
        f.truncate(1 << 30)  # sparse: 1 GiB that load() must not read
    with pytest.raises(fp.SerializationError, match="65536 bytes"):
        fp.PublicKey.load(big, insecure=True)
    for special in ("/dev/zero", tmp_path):
        with pytest.raises(fp.SerializationError, match="not a regular file"):
            fp.PrivateKey.load(special, insecure=True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(fp.SerializationError, match="not a regular file"):
        fp.PublicKey.load(fifo, insecure=True)  # returns at once: no writer is awaited
    sk.save(tmp_path / "ok")
    assert fp.PrivateKey.load(tmp_path / "ok", insecure=True) == sk
