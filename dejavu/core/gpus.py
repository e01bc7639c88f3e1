"""Distinct GPUs for jobs that run side by side on one machine.

A local `snakemake --resources gpu=4` runs up to four GPU jobs at once, and each would pick
`cuda:0`. Before it first touches CUDA, a job claims GPUs of its own: it takes an exclusive
lock on one file per device in the machine's temporary folder (node-local, so `flock` works
there even where the shared file system lacks it), holds it until the process exits, and
narrows `CUDA_VISIBLE_DEVICES` to what it holds, so `cuda:0` (and `cuda:1`, ... for a
data-parallel job) are its own. All claims go through the locks: no two live jobs hold one
device, and a job that finds every device taken waits for one. Under SLURM the scheduler
binds devices to each job already, and nothing is claimed.

Torch-free: the devices are counted from the driver's /proc entries, not through CUDA,
whose first call would fix the visible devices too early.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

CLAIMED = "DEJAVU_GPUS_CLAIMED"  # set once a process holds its devices; children inherit it
_held: list = []  # the open lock files: closing one releases its device


def machine_devices() -> list[str]:
    """The devices a job may use here: CUDA_VISIBLE_DEVICES when set, else every GPU the
    NVIDIA driver lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    gpus = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(gpus.iterdir())))] if gpus.is_dir() else []


def claim(n: int, devices: list[str] | None = None, lock_dir: str | None = None,
          poll_s: float = 1.0, timeout_s: float | None = None) -> list[str] | None:
    """Hold `n` of `devices` (default `machine_devices()`) for this process and make them
    the only visible ones; wait while fewer are free. None, and nothing changed, under
    SLURM, when this process (or its parent) already claimed, or when there is no choice
    to make (no more devices than asked for)."""
    if os.environ.get("SLURM_JOB_ID") or os.environ.get(CLAIMED):
        return None
    devices = machine_devices() if devices is None else devices
    if len(devices) <= n:
        return None
    lock_dir = Path(lock_dir or tempfile.gettempdir())
    start = time.monotonic()
    while True:
        got = []
        for device in devices:
            handle = open(lock_dir / f"dejavu-gpu-{device}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            got.append((device, handle))
            if len(got) == n:
                _held.extend(h for _, h in got)
                chosen = [d for d, _ in got]
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
                os.environ[CLAIMED] = "1"
                return chosen
        for _, handle in got:  # not enough free: let go and wait, never hold a part
            handle.close()
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{n} of GPUs {devices} not free after {timeout_s} s")
        time.sleep(poll_s)
