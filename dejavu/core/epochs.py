"""Which epochs a training run evaluates and saves, and where a checkpoint of an epoch sweep
starts from.

Kept free of torch: the Snakefile asks these questions while it builds the DAG.
"""

from __future__ import annotations


def state_epochs(epochs: int, every: int) -> list[int]:
    """Epochs whose training state the train stage saves: every `every` epochs and the last.
    They depend on nothing an epoch sweep changes, so adding an epoch to evaluate never
    retrains the run (`run_snapshot` continues from the nearest state before it)."""
    return sorted(set(range(every, epochs + 1, every)) | {epochs})


def start_state(epoch: int, epochs: int, every: int) -> int:
    """The saved state a checkpoint at `epoch` continues from (0: the untrained model)."""
    before = [e for e in state_epochs(epochs, every) if e <= epoch]
    return before[-1] if before else 0


def evaluated_epochs(epochs: int, checkpoints: list[int]) -> list[int]:
    """Epochs of a training run that are evaluated: its checkpoints and the last (the config
    check refuses checkpoints past the last)."""
    return sorted(set(checkpoints) | {epochs})
