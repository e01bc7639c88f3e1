"""A GPU that was asked for but is unusable is an error naming the cause, never a CPU run."""

import pytest
import torch

from dejavu.core.models import cuda_problem, pick_device

pytestmark = pytest.mark.unit

NO_GPU = not torch.cuda.is_available()


def test_auto_is_cuda_when_usable_else_the_cpu():
    assert pick_device("auto").type == ("cpu" if NO_GPU else "cuda")
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a usable GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_asking_for_cuda_without_a_usable_gpu_fails_saying_why(device):
    cause = cuda_problem()
    assert cause  # no driver, a CPU-only build, or no visible device
    with pytest.raises(RuntimeError, match="CUDA is not usable here") as err:
        pick_device(device)
    assert cause in str(err.value)


def test_a_device_index_beyond_the_visible_gpus_is_named():
    count = torch.cuda.device_count() if not NO_GPU else 0
    problem = cuda_problem(count)  # one past the last
    assert problem is not None
    if not NO_GPU:
        assert f"{count} visible" in problem


def test_every_gpu_rule_runs_on_cuda_when_given_gpus():
    """What the rules hand their stages: the config's device, but CUDA (no fallback) for a
    job given GPUs under device: auto."""
    import re
    from conftest import REPO
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    assert 'device=config["device"]' not in rules
    for gpus in re.findall(r"gpu=config\[\"(\w+)\"\]\[\"gpus\"\]", rules):
        assert f'device_for(config["{gpus}"]["gpus"])' in rules, gpus
