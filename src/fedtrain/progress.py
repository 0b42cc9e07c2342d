"""What a run shows while it works: the end of each client's phases, as tqdm bars or as plain log lines.

A client reports each step of its round as it ends (a `PhaseEnd`: local training, encrypting
its statistics or its update, decrypting sums or its slice of the aggregate).  On a terminal
`RunProgress` shows them in the bar below the rounds bar; anywhere else (a log file, CI) it
writes one line per step, so that a log shows life long before the round ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger("fedtrain")

PHASES = ("train", "encrypt", "decrypt")
# What a client does in each phase of each step (the message it answers) of a round.
STEP_NAMES = {
    ("round_start", "train"): "train",
    ("round_start", "encrypt"): "encrypt statistics",
    ("stats_sum", "decrypt"): "decrypt summed statistics",
    ("stats_sum", "encrypt"): "encrypt update",
    ("decrypt_request", "decrypt"): "decrypt its slice of the sum",
    ("shares", "decrypt"): "assemble the global model",
}


def step_name(kind: str, phase: str) -> str:
    """What a client did in `phase` while answering a `kind` message ("encrypt update"); else the phase."""
    return STEP_NAMES.get((kind, phase), phase)


@dataclass(frozen=True)
class PhaseEnd:
    """One step of a client's round has ended: its phase, wall seconds, and the ciphertexts it made."""

    client: int
    round: int
    phase: str  # one of PHASES: where metrics.jsonl counts the step's time
    seconds: float
    ciphertexts: int = 0
    step: str = ""  # what the client did, e.g. "encrypt update" (default: the phase)

    def describe(self) -> str:
        """E.g. 'round 2 client 1: encrypt update 3.1 s (41,210 ciphertexts)'."""
        text = f"round {self.round} client {self.client}: {self.step or self.phase} {self.seconds:.1f} s"
        if self.ciphertexts:
            text += f" ({self.ciphertexts:,} ciphertext{'' if self.ciphertexts == 1 else 's'})"
        return text


PhaseHook = Callable[[PhaseEnd], None]


class RunProgress:
    """Progress of `fedtrain run`: tqdm bars on a terminal (`bars`), else one log line per client step (`lines`)."""

    def __init__(self, *, bars: bool, lines: bool) -> None:
        self.bars = bars
        self.lines = lines
        self._rounds: Any = None
        self._client: Any = None  # local training of the client at work
        self._status: Any = None  # the last step that ended

    def start(self, rounds: int, first_round: int) -> None:
        """Opens the rounds bar at `first_round` of `rounds`, the training bar and the line of the last step."""
        from tqdm import tqdm

        self._rounds = tqdm(total=rounds, initial=first_round - 1, desc="rounds", unit="round",
                            disable=not self.bars, position=0)
        self._client = tqdm(total=0, desc="  training", unit="batch", leave=False, disable=not self.bars,
                            position=1)
        self._status = tqdm(total=0, desc="", bar_format="{desc}", leave=False, disable=not self.bars, position=2)

    def local(self, cid: int, round_: int) -> Callable[[int, int, int], None] | None:
        """The callback(epoch, batches done, batches in the epoch) of client `cid`'s local training."""
        bar = self._client
        if bar is None or not self.bars:
            return None
        bar.set_description_str(f"  round {round_} client {cid}", refresh=False)

        def update(epoch: int, done: int, total: int) -> None:
            if bar.total != total or done < bar.n:
                bar.reset(total=total)
            bar.set_postfix_str(f"epoch {epoch + 1}", refresh=False)
            bar.n = done
            bar.refresh()

        return update

    def phase(self, event: PhaseEnd) -> None:
        """A client step has ended: shown in the client bar, or logged as one line."""
        if self.lines:
            log.info("%s", event.describe())
        if self.bars and self._status is not None:
            self._status.set_description_str(f"  last step: {event.describe()}")

    def round_done(self, record: dict) -> None:
        """Advances the rounds bar and shows the round's accuracy and test loss."""
        if self._rounds is None:
            return
        self._rounds.update(1)
        self._rounds.set_postfix_str(f"acc {record['accuracy']:.3f} loss {record['test_loss']:.3f}")

    def close(self) -> None:
        """Closes the bars (the rounds bar stays on screen)."""
        for bar in (self._status, self._client, self._rounds):
            if bar is not None:
                bar.close()
        self._status = self._client = self._rounds = None
