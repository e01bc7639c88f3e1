"""bench/gpu_check.py's logic, run with the CPU on both sides: every check passes, a
broken path shows as FAIL without hiding the others, and a machine without a GPU exits 0."""

import pytest
import torch

from conftest import bench_script

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def gpu_check():
    return bench_script("gpu_check")


def test_every_check_passes_with_the_cpu_on_both_sides(gpu_check, tmp_path):
    # not the data-parallel check: on the CPU it is tests/test_train.py's two processes
    # equal to one (the same training, the same comparison), which the suite runs already
    skip = (gpu_check.throughput, gpu_check.data_parallel)
    rows = gpu_check.run("cpu", tuple(c for c in gpu_check.CHECKS if c not in skip))
    assert {r["result"] for r in rows} == {"ok"}, gpu_check.table(rows)
    names = " ".join(r["check"] for r in rows)
    for part in ("train step vicreg", "train step dino", "embed", "k-NN torch", "k-NN faiss",
                 "decoder", "SSLMem"):
        assert part in names


def test_a_broken_path_is_a_failed_row_and_the_others_still_run(gpu_check):
    def broken(device):
        raise RuntimeError("no kernel for this")
    rows = gpu_check.run("cpu", (broken, gpu_check.sslmem_distances))
    assert [r["result"] for r in rows] == ["FAIL", "ok"]
    assert "no kernel for this" in rows[0]["detail"]
    assert "FAIL" in gpu_check.table(rows)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_why_and_exits_0(gpu_check, capsys):
    assert gpu_check.main([]) == 0
    assert "no usable GPU here" in capsys.readouterr().out
