"""Time limits: a job given a deadline (its cluster time limit, `max_runtime`) stops at a
kept resume state before it and raises OutOfTime; its script exits with OUT_OF_TIME_EXIT
(`core.logs.job`), Snakemake resubmits it (the rule's retries) and the next attempt
continues to the result of one uninterrupted run (`core.resume`). No torch here: every job
script imports it."""

from __future__ import annotations

import time

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
