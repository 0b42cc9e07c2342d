"""Shared fixtures of the fedtrain tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def demo_cache(tmp_path_factory) -> Path:
    """A private demo-data cache for the whole session (never the user's ~/.cache/fedtrain)."""
    path = tmp_path_factory.mktemp("demo-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDTRAIN_CACHE", str(path))
        yield path


@pytest.fixture(scope="session", autouse=True)
def keys_home(tmp_path_factory) -> Path:
    """Run keys go to a private folder for the whole session (never the user's ~/.fedtrain/keys)."""
    path = tmp_path_factory.mktemp("keys")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDTRAIN_KEYS", str(path))
        yield path
