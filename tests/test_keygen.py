"""`python -m fastpaillier keygen`: key files, their modes, the printed fingerprint, refusals; import without flwr."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

import fastpaillier as fp
import fastpaillier.__main__ as cli


def test_keygen_writes_a_0600_private_key_a_public_key_and_prints_the_fingerprint(tmp_path, capsys):
    out = tmp_path / "keys"
    assert cli.main(["keygen", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    private_key = fp.PrivateKey.load(out / "paillier.key")
    public_key = fp.PublicKey.load(out / "paillier.pub")
    assert private_key.public_key == public_key and public_key.bits == 2048
    assert stat.S_IMODE(os.stat(out / "paillier.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    assert f"fingerprint  {public_key.fingerprint.hex()}" in printed
    assert "fastpaillier-private-key=" in printed and "Flower app folder" in printed


def test_keygen_never_overwrites_without_force_and_refuses_flower_app_folders(tmp_path, capsys):
    out = tmp_path / "keys"
    out.mkdir()
    (out / "paillier.key").write_bytes(b"old")
    assert cli.main(["keygen", "--out", str(out)]) == 2
    assert (out / "paillier.key").read_bytes() == b"old"
    assert "--force" in capsys.readouterr().err

    app = tmp_path / "my-flower-app"
    (app / "keys").mkdir(parents=True)
    (app / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.flwr.app]\npublisher = "me"\n')
    assert cli.main(["keygen", "--out", str(app / "keys")]) == 2
    assert "uploads that folder" in capsys.readouterr().err
    assert not any((app / "keys").iterdir())

    with pytest.raises(SystemExit):
        cli.main(["keygen", "--out", str(tmp_path / "k2"), "--bits", "1024"])


def test_fastpaillier_imports_without_flower_and_fastpaillier_flwr_says_what_to_install():
    code = ("import sys; sys.modules['flwr'] = None\n"
            "import fastpaillier, fastpaillier.__main__\n"
            "try:\n    import fastpaillier.flwr\nexcept ImportError as e:\n    print('HINT', e)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "HINT" in res.stdout and "fastpaillier[flwr]" in res.stdout and "flwr==1.42.0" in res.stdout
