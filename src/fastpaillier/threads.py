"""The default number of worker threads used by batched operations."""

from __future__ import annotations

import os

from .errors import InvalidArgumentError


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


_num_threads = _available_cores()


def get_num_threads() -> int:
    """Threads used when an operation is called with threads=None (default: all usable cores)."""
    return _num_threads


def set_num_threads(threads: int) -> None:
    """Sets the default thread count for batched operations."""
    global _num_threads
    _num_threads = resolve_threads(threads)


def resolve_threads(threads: int | None) -> int:
    """Validates a per-call `threads` argument, falling back to the default."""
    if threads is None:
        return _num_threads
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise InvalidArgumentError(f"threads must be a positive int or None, got {threads!r}")
    if threads < 1:
        raise InvalidArgumentError(f"threads must be >= 1, got {threads}")
    return min(threads, 1024)
