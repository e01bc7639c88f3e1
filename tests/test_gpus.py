"""Concurrent local jobs claim distinct GPUs (dejavu.core.gpus): real processes holding real
file locks, over a list of device names (no GPU is needed to test who gets which)."""

import json
import os
import subprocess
import select
import sys

import pytest

from dejavu.core import gpus

pytestmark = pytest.mark.unit

HOLDER = """
import json, os, sys, time
from dejavu.core import gpus
got = gpus.claim({n}, devices={devices!r}, lock_dir={lock_dir!r}, poll_s=0.05)
print(json.dumps({{"got": got, "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}}), flush=True)
sys.stdin.readline()  # hold the devices until told to exit
"""


def holder(tmp_path, n, devices=("0", "1", "2"), env=None):
    code = HOLDER.format(n=n, devices=list(devices), lock_dir=str(tmp_path))
    environ = {k: v for k, v in os.environ.items()
               if k not in ("SLURM_JOB_ID", gpus.CLAIMED, "CUDA_VISIBLE_DEVICES")}
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**environ, **(env or {})})


def answer(proc) -> dict:
    return json.loads(proc.stdout.readline())


def test_live_jobs_hold_distinct_devices_and_a_finished_one_frees_its_own(tmp_path):
    first, second = holder(tmp_path, 1), holder(tmp_path, 2)
    a, b = answer(first), answer(second)
    assert a["got"] and b["got"] and not set(a["got"]) & set(b["got"])
    assert sorted(a["got"] + b["got"]) == ["0", "1", "2"]
    assert b["visible"] == ",".join(b["got"])  # cuda:0, cuda:1 are its own devices
    third = holder(tmp_path, 1)  # every device taken: it waits ...
    assert select.select([third.stdout], [], [], 1.0)[0] == []
    first.communicate("\n")  # ... until the first job exits
    assert answer(third)["got"] == a["got"]
    for proc in (second, third):
        proc.communicate("\n")


def test_nothing_is_claimed_under_slurm_or_without_a_choice(tmp_path, monkeypatch):
    proc = holder(tmp_path, 1, env={"SLURM_JOB_ID": "7"})
    assert answer(proc) == {"got": None, "visible": None}
    proc.communicate("\n")
    proc = holder(tmp_path, 2, devices=("0", "1"))
    assert answer(proc)["got"] is None
    proc.communicate("\n")
    busy = holder(tmp_path, 2)
    try:
        answer(busy)
        for name in ("SLURM_JOB_ID", gpus.CLAIMED):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(TimeoutError, match=r"2 of GPUs \['0', '1', '2'\] not free"):
            gpus.claim(2, devices=["0", "1", "2"], lock_dir=str(tmp_path), poll_s=0.05,
                       timeout_s=0.3)
    finally:
        busy.communicate("\n")
