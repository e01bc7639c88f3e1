"""A real single-node SLURM cluster for the tests: Debian's slurmctld, slurmd and munge,
started as root without systemd, one node on 127.0.0.1 with two fake GPUs.

Facts this relies on (measured on the reference machine, SLURM 22.05):
- slurm.conf must be at /etc/slurm/slurm.conf: the job-step executor's inner `srun` does
  not see SLURM_CONF;
- without an accounting database `sacct` fails, so the profile asks the SLURM executor
  plugin to poll `squeue`, and MinJobAge keeps finished jobs visible to it for an hour (a
  whole test session);
- a GPU can be faked for scheduling: gres.conf points at character devices.

`python tests/slurm_cluster.py start|stop` runs it by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import apt_packages

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
CONF_DIR = Path("/etc/slurm")
STATE = Path("/var/spool/dejavu-slurm")
PID_FILES = {"slurmd": STATE / "slurmd.pid", "slurmctld": STATE / "slurmctld.pid",
             "munged": STATE / "munged.pid"}
FAKE_GPUS = [Path("/dev/dejavu-fake-gpu0"), Path("/dev/dejavu-fake-gpu1")]


def have_slurm() -> bool:
    return all(shutil.which(cmd) for cmd in ("slurmctld", "slurmd", "munged", "sbatch"))


def install() -> str | None:
    """Install SLURM with apt when missing; None on success, else why it could not."""
    if have_slurm():
        return None
    # without recommends: 8 packages instead of 42 (slurm-wlm-plugins and its HDF5, ROCm,
    # InfluxDB and IPMI plugins and their -dev packages); every plugin the cluster below
    # uses is in slurm-wlm-basic-plugins
    why = apt_packages.install(list(PACKAGES), "SLURM")
    if why:
        return why
    return None if have_slurm() else "apt-get installed SLURM, but its commands are missing"


def slurm_conf(host: str, cpus: int, memory_mb: int) -> str:
    return f"""# written by dejavu's tests (tests/slurm_cluster.py)
ClusterName=dejavu-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={STATE}/ctld
SlurmdSpoolDir={STATE}/d
SlurmctldPidFile={PID_FILES['slurmctld']}
SlurmdPidFile={PID_FILES['slurmd']}
SlurmctldLogFile={STATE}/slurmctld.log
SlurmdLogFile={STATE}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
GresTypes=gpu
MinJobAge=3600
ReturnToService=2
# jobs here are mostly start-up (imports, I/O): let twice as many run as there are cores
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} \
  Gres=gpu:{len(FAKE_GPUS)} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def start(timeout: float = 60) -> None:
    """Write the configuration and start munged, slurmctld and slurmd; wait for the node."""
    stop()
    host = socket.gethostname().split(".")[0]
    memory_mb = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 - 2048
    for path in (STATE / "ctld", STATE / "d", CONF_DIR, Path("/run/munge")):
        path.mkdir(parents=True, exist_ok=True)
    for i, dev in enumerate(FAKE_GPUS):
        if not dev.exists():
            os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a character device like null
    (CONF_DIR / "slurm.conf").write_text(slurm_conf(host, 2 * os.cpu_count(), memory_mb))
    (CONF_DIR / "gres.conf").write_text(
        "".join(f"NodeName={host} Name=gpu File={dev}\n" for dev in FAKE_GPUS))
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "--create"], check=True)
    subprocess.run(["munged", "--force", f"--pid-file={PID_FILES['munged']}"], check=True)
    subprocess.run(["slurmctld", "-c"], check=True)  # -c: forget old jobs
    subprocess.run(["slurmd"], check=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
        if state.stdout.strip() == "idle":
            return
        time.sleep(0.5)
    ctld_log = STATE / "slurmctld.log"
    log = ctld_log.read_text()[-2000:] if ctld_log.exists() else ""
    raise RuntimeError(f"the SLURM node did not come up: {state.stdout} {state.stderr}\n{log}")


def stop() -> None:
    """Stop the daemons by their PIDs (files written at start)."""
    for name in ("slurmd", "slurmctld", "munged"):
        path = PID_FILES[name]
        if not path.exists():
            continue
        try:
            pid = int(path.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, ValueError, IndexError):
            pass
        path.unlink(missing_ok=True)


def jobs_seen() -> list[dict]:
    """Every job slurmctld still knows (MinJobAge keeps finished ones): id, name, state."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%j|%T"], capture_output=True,
                         text=True, check=True).stdout
    return [dict(zip(("id", "name", "state"), line.split("|"))) for line in out.splitlines()]


if __name__ == "__main__":
    {"start": start, "stop": stop}[sys.argv[1]]()
