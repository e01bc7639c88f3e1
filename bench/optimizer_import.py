"""What a job's first optimizer step costs: dejavu's AdamW (torch's functional update, state
kept by dejavu) against torch's `torch.optim.AdamW` class, each in a fresh process that
imports torch, makes a small model's parameters and takes one step.

Printed per optimizer: the median CPU time of the child process over `--rounds` alternating
rounds (the import of torch included: it is the same for both), whether `torch._dynamo`
was imported, and the difference to dejavu's.

    python bench/optimizer_import.py [--rounds 6]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from statistics import median

SETUP = ("import sys, torch\n"
         "params = [torch.nn.Parameter(torch.randn(64, 64)) for _ in range(8)]\n"
         "for p in params: p.grad = torch.randn_like(p)\n")
STEPS = {
    "dejavu AdamW (torch.optim.adamw.adamw)":
        "from dejavu.core.optim import AdamW\nAdamW(params, lr=1e-3).step()\n",
    "torch.optim.AdamW": "torch.optim.AdamW(params, lr=1e-3).step()\n",
}
REPORT = "print('torch._dynamo' in sys.modules)\n"


def run(code: str) -> tuple[float, bool]:
    """CPU-s of a fresh process running `code`, and whether it imported torch._dynamo."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, out.strip().splitlines()[-1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    rounds = parser.parse_args().rounds
    cpu: dict[str, list[float]] = {name: [] for name in STEPS}
    dynamo: dict[str, bool] = {}
    for _ in range(rounds):
        for name, step in STEPS.items():
            seconds, dynamo[name] = run(SETUP + step + REPORT)
            cpu[name].append(seconds)
    ours = median(cpu[next(iter(STEPS))])
    print(f"{'optimizer':42s} {'CPU-s':>7s} {'- dejavu':>9s}  torch._dynamo imported")
    for name in STEPS:
        print(f"{name:42s} {median(cpu[name]):7.2f} {median(cpu[name]) - ours:+9.2f}  "
              f"{dynamo[name]}")


if __name__ == "__main__":
    main()
