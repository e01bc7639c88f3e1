"""How busy the machine's CPUs were while a test session ran (tests/conftest.py prints it)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


class MachineLoad:
    """How busy this machine's CPUs were while the session ran (Linux /proc/stat, every
    process: the SLURM jobs too), printed at the end by tenths of the session, with the
    share the host took (steal: a virtual machine's noisy neighbours): a suite that is not
    CPU-bound throughout has idle time to find (issue 17)."""

    def __init__(self, every: float = 10.0):
        self.every, self.samples = every, []

    @staticmethod
    def read() -> tuple[float, int, int, int] | None:
        """(time, busy ticks, all ticks, stolen ticks) of every CPU since boot."""
        try:
            ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0]
                     .split()[1:9]]  # user nice system idle iowait irq softirq steal
        except (OSError, ValueError):
            return None
        return time.time(), sum(ticks) - ticks[3] - ticks[4], sum(ticks), ticks[7]

    def start(self) -> None:
        first = self.read()
        if first is None:
            return
        self.samples.append(first)

        def sample():
            while True:
                time.sleep(self.every)
                self.samples.append(self.read())
        threading.Thread(target=sample, daemon=True).start()

    def summary(self) -> str | None:
        samples = self.samples + [self.read()] if self.samples else []
        if len(samples) < 3:
            return None

        def at(t: float) -> tuple:  # the last sample taken by time t
            return max((x for x in samples if x[0] <= t), key=lambda x: x[0])

        def share(start: tuple, end: tuple, of: int = 1) -> str:
            return f"{100 * (end[of] - start[of]) / (end[2] - start[2]):.0f}" \
                if end[2] > start[2] else "-"
        first, last = samples[0], samples[-1]
        edges = [at(first[0] + (last[0] - first[0]) * i / 10) for i in range(10)] + [last]
        tenths = " ".join(share(a, b) for a, b in zip(edges, edges[1:]))
        return (f"machine CPU over the session: {share(first, last)} % busy of "
                f"{os.cpu_count()} cores for {last[0] - first[0]:.0f} s ("
                f"{share(first, last, of=3)} % taken by the host); by tenths of the "
                f"session: {tenths} %")
