"""What a job's end costs: a process that imports what a stage imports and ends the usual way
(Python tears down every module and object first) against one that ends with
`dejavu.core.logs.finish` (the atexit handlers, then the process ends), as every workflow
script does.

Both kinds run in turn, `--rounds` times each, so that the machine's noise falls on both
alike; printed per kind of job: the median CPU time (user + system, of the child process)
of each end and their ratio.

    python bench/job_exit.py [--rounds 12]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from statistics import median

# what the stages import: with torch (train, embed, snapshot, init, ...), without (index,
# score, onemodel, summary, embed_finalize, ...)
JOBS = {
    "with torch (embed)": "import dejavu.attack.embed",
    "without torch (score)": "import dejavu.attack.score, dejavu.core.store",
}
ENDS = {"usual": "", "finish": "; from dejavu.core import logs; logs.finish()"}


def cpu_seconds(code: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    rounds = parser.parse_args().rounds
    print(f"{'job':24s} {'usual end CPU-s':>16s} {'finish CPU-s':>13s} {'ratio':>6s}")
    for name, imports in JOBS.items():
        times = {end: [] for end in ENDS}
        for _ in range(rounds):
            for end, tail in ENDS.items():
                times[end].append(cpu_seconds(imports + tail))
        usual, finish = median(times["usual"]), median(times["finish"])
        print(f"{name:24s} {usual:16.2f} {finish:13.2f} {finish / usual:6.2f}")


if __name__ == "__main__":
    main()
