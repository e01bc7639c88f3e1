"""Resume states: a killed job continues from the last state it kept.

A state is one file, written atomically (a kill never leaves half of one) and tagged with
the run it belongs to: a fingerprint of the settings, data and starting weights. A state of
another run is ignored, so a job rerun with changed settings starts afresh. SSL training
(`training.train`) and the RCDM decoders (`rcdm.decoder`) keep theirs this way.

A job given a deadline (a cluster's time limit) stops at a kept state before it and raises
OutOfTime; its script exits with OUT_OF_TIME_EXIT, Snakemake resubmits it (the rule's
retries) and the next attempt continues to the result of one uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

OUT_OF_TIME_EXIT = 75  # a job (or data-parallel process) that stopped at its deadline: EX_TEMPFAIL


class OutOfTime(Exception):
    """Work stopped at a kept resume state to end before its time limit; running it again
    continues from there."""


def deadline_after(minutes: float | None) -> float | None:
    """The time.time() `minutes` from now (a job's max_runtime); None without a limit."""
    return None if minutes is None else time.time() + 60 * minutes


def late(deadline: float | None, interval_seconds: float) -> bool:
    """Whether another interval of work like the last one, with room for saving, would end
    past `deadline` (a time.time(); None: no limit)."""
    return deadline is not None and time.time() + 1.5 * interval_seconds > deadline


class ResumeState:
    def __init__(self, path: str | Path, run_id: str, writer: bool = True):
        self.path, self.run_id, self.writer = Path(path), run_id, writer  # one process writes

    def load(self, device: torch.device | str) -> dict | None:
        """The state this run kept, or None (none kept, or one of another run)."""
        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location=device, weights_only=True)
        if state["run_id"] != self.run_id:
            log.info("ignoring %s: written for other settings, data or weights", self.path)
            return None
        return state

    def save(self, state: dict) -> None:
        if not self.writer:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({**state, "run_id": self.run_id}, tmp)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        if self.writer:
            self.path.unlink(missing_ok=True)
