"""The driver of every long loop (`dejavu.core.resume.drive`), on a toy loop whose result
is known: unit u adds u to a total. SSL training, the decoders and the correlation ResNet
run under it; their own tests check their weights across kills and time limits."""

import pytest

from dejavu.core.deadline import OutOfTime
from dejavu.core.resume import ResumeState, drive

pytestmark = pytest.mark.unit


class Sum:
    """Unit u adds u to the total; `die_at` raises in the middle of that unit (a kill)."""

    def __init__(self, die_at: int | None = None):
        self.total, self.ran, self.die_at = 0, [], die_at

    def run_unit(self, unit: int) -> None:
        if unit == self.die_at:
            raise KeyboardInterrupt
        self.total += unit
        self.ran.append(unit)

    def state(self, unit: int) -> dict:
        return {"total": self.total, "unit": unit}

    def restore(self, state: dict) -> int:
        self.total = state["total"]
        return state["unit"] + 1


def test_a_chain_of_calls_stopped_at_the_deadline_ends_where_one_call_does(tmp_path):
    state = ResumeState(tmp_path / "resume" / "state.pt", "run-1")
    calls = []
    while True:
        work = Sum()
        try:
            drive(work, 5, resume=state, deadline=0.0, what="step")
            break
        except OutOfTime as stopped:
            calls.append((work.ran, str(stopped)))
    assert calls == [([u], f"stopped after step {u} of 5 (time limit)") for u in range(1, 5)]
    assert work.ran == [5] and work.total == 15
    assert not (tmp_path / "resume").exists()  # cleared, folder and all


def test_a_killed_call_continues_after_the_last_kept_state(tmp_path):
    state = ResumeState(tmp_path / "state.pt", "run-1")
    with pytest.raises(KeyboardInterrupt):
        drive(Sum(die_at=6), 8, resume=state, save_every=2)
    work = Sum()
    drive(work, 8, resume=state, save_every=2)
    assert work.ran == [5, 6, 7, 8] and work.total == 36  # state of unit 4 kept


def test_a_state_of_another_run_is_ignored(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        drive(Sum(die_at=3), 4, resume=ResumeState(tmp_path / "state.pt", "run-1"),
              save_every=1)
    work = Sum()
    drive(work, 4, resume=ResumeState(tmp_path / "state.pt", "run-2"), save_every=1)
    assert work.ran == [1, 2, 3, 4] and work.total == 10


def test_rank_zeros_decision_stops_every_process(tmp_path):
    """`agree` stands for the broadcast of rank 0's decision: a process whose own clock
    says stop goes on when rank 0 does, and stops (after `sync`) when rank 0 stops."""
    synced = []
    work = Sum()
    drive(work, 3, resume=ResumeState(tmp_path / "state.pt", "r"), deadline=0.0,
          agree=lambda late: False, sync=lambda: synced.append(True))
    assert work.ran == [1, 2, 3] and synced == []
    far = 1e12  # a deadline no unit comes near
    with pytest.raises(OutOfTime):
        drive(Sum(), 3, resume=ResumeState(tmp_path / "state.pt", "r"), deadline=far,
              agree=lambda late: True, sync=lambda: synced.append(True))
    assert synced == [True]


def test_a_deadline_needs_a_place_for_the_state():
    with pytest.raises(ValueError, match="resume directory"):
        drive(Sum(), 3, deadline=0.0)
