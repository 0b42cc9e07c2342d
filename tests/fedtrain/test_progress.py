"""What a run shows while it works: the phase events' text, and the bars or log lines they become."""

from __future__ import annotations

import contextlib
import io
import logging

import pytest

from fedtrain.progress import PhaseEnd, RunProgress, step_name


@pytest.fixture
def fedtrain_log():
    """The "fedtrain" logger writing plain messages into a buffer."""
    logger = logging.getLogger("fedtrain")
    saved = logger.handlers[:], logger.level, logger.propagate
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield buffer
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


UPDATE = PhaseEnd(client=1, round=2, phase="encrypt", seconds=3.14, ciphertexts=41210, step="encrypt update")


def test_a_step_is_one_plain_line():
    assert UPDATE.describe() == "round 2 client 1: encrypt update 3.1 s (41,210 ciphertexts)"
    assert PhaseEnd(0, 1, "train", 12.34).describe() == "round 1 client 0: train 12.3 s"
    assert PhaseEnd(0, 1, "encrypt", 0.0, 1, "encrypt statistics").describe() == \
        "round 1 client 0: encrypt statistics 0.0 s (1 ciphertext)"


def test_steps_are_named_by_the_message_they_answer():
    assert step_name("stats_sum", "encrypt") == "encrypt update"
    assert step_name("decrypt_request", "decrypt") == "decrypt its slice of the sum"
    assert step_name("something new", "decrypt") == "decrypt"


def test_without_a_terminal_each_step_is_logged(fedtrain_log):
    progress = RunProgress(bars=False, lines=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        progress.start(rounds=3, first_round=1)
        assert progress.local(1, 2) is None
        progress.phase(UPDATE)
        progress.round_done({"accuracy": 0.5, "test_loss": 1.0})
        progress.close()
    assert fedtrain_log.getvalue() == "round 2 client 1: encrypt update 3.1 s (41,210 ciphertexts)\n"
    assert err.getvalue() == ""  # no bars


def test_on_a_terminal_the_bars_show_training_and_the_last_step(fedtrain_log):
    progress = RunProgress(bars=True, lines=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        progress.start(rounds=3, first_round=1)
        bar = progress.local(1, 2)
        bar(0, 3, 4)
        progress.phase(UPDATE)
        progress.round_done({"accuracy": 0.5, "test_loss": 1.0})
        progress.close()
    shown = err.getvalue()
    assert "round 2 client 1" in shown and "3/4" in shown
    assert "last step: round 2 client 1: encrypt update 3.1 s (41,210 ciphertexts)" in shown
    assert "acc 0.500 loss 1.000" in shown
    assert fedtrain_log.getvalue() == ""  # no log lines beside the bars
