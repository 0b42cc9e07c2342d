"""The README's API example runs as written, and the crypto demo succeeds."""

from __future__ import annotations

import pathlib
import re

import fastpaillier.__main__ as demo

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_api_example_runs(capsys):
    text = README.read_text()
    section = text.split("## API example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "[21 43 65]"


def test_demo_checks_the_aggregate(capsys):
    assert demo.main(["--clients", "3", "--values", "3000"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "server aggregation" in out


def test_demo_rejects_bad_arguments():
    import pytest

    with pytest.raises(SystemExit):
        demo.main(["--clients", "0"])
