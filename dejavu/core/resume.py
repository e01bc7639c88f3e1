"""Long loops that survive kills and time limits: resume states and the one driver every
long loop runs under (SSL training, the RCDM decoders, the correlation ResNet).

A loop is cut into units (an epoch, a step). After a unit, `drive` keeps a resume state every
`save_every` units; with a deadline (`core.deadline`: a cluster's time limit), it stops after
the first unit past which another like it would end too close to the deadline, keeps the
state and raises OutOfTime (the job exits with OUT_OF_TIME_EXIT; Snakemake resubmits it).
A rerun -- after a kill or a stop -- loads the state and continues with the next unit, to the
result of one uninterrupted run, bit for bit on CPU with a fixed seed.

A state is one file, written atomically (a kill never leaves half of one) and tagged with
the run it belongs to: a fingerprint of the settings, data and starting weights. A state of
another run is ignored, so a job rerun with changed settings starts afresh.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable, Protocol

import torch

from .deadline import OutOfTime, late

log = logging.getLogger(__name__)


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
        """Remove the state, and its folder if nothing else is left in it."""
        if self.writer:
            self.path.unlink(missing_ok=True)
            try:
                self.path.parent.rmdir()
            except OSError:  # not empty, or gone
                pass


class Resumable(Protocol):
    """A long loop's work, as `drive` runs it."""

    def run_unit(self, unit: int) -> None:
        """Unit `unit` (1, 2, ...) of the work: an epoch, a step."""

    def state(self, unit: int) -> dict:
        """Everything needed to go on after unit `unit`: weights, optimizer, generators,
        counters, loss history."""

    def restore(self, state: dict) -> int:
        """Load a state kept by `state`; the unit to go on with."""


class Store(Protocol):
    """Where a loop's resume state is kept: a ResumeState, or something built on one."""

    def load(self, device: torch.device | str) -> dict | None: ...

    def save(self, state: dict) -> None: ...

    def clear(self) -> None: ...


def drive(work: Resumable, last: int, *, first: int = 1, resume: Store | None = None,
          deadline: float | None = None, save_every: int = 0, what: str = "epoch",
          device: torch.device | str = "cpu", agree: Callable[[bool], bool] = lambda stop: stop,
          sync: Callable[[], None] = lambda: None) -> None:
    """Run units `first`..`last` of `work`, continuing after the state `resume` holds, if
    any (a killed or stopped job's).

    After every unit but the last: a resume state every `save_every` units (0: none); with a
    `deadline` (a time.time()), a stop -- the state kept, then OutOfTime -- when another unit
    as long as this one would end too close to it (at least one unit runs per call, so a
    chain of calls always finishes). In a process group, `agree` turns each process's
    decision into rank 0's (all stop after the same unit) and `sync` waits for every process
    before the stop; only the store's writer writes. The state is cleared at the end."""
    if deadline is not None and resume is None:
        raise ValueError(f"working to a deadline needs a resume directory to continue from "
                         f"({what}s)")
    state = resume.load(device) if resume else None
    if state is not None:
        first = work.restore(state)
        log.info("resuming after %s %d%s", what, first - 1,
                 " (the last attempt stopped at its time limit)"
                 if state.get("stopped_for_time") else "")
    for unit in range(first, last + 1):
        started = time.time()
        work.run_unit(unit)
        if unit == last:
            break
        if resume and save_every and unit % save_every == 0:
            resume.save(work.state(unit))
        if deadline is not None and agree(late(deadline, time.time() - started)):
            resume.save({**work.state(unit), "stopped_for_time": True})
            sync()
            log.info("stopping after %s %d of %d before the time limit; a rerun continues "
                     "from here", what, unit, last)
            raise OutOfTime(f"stopped after {what} {unit} of {last} (time limit)")
    if resume:
        resume.clear()
