import pytest
import torch

from dejavu.training.optim import LARS, lr_at, make_optimizer

pytestmark = pytest.mark.unit


def test_lars_step_matches_the_formula():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))   # |w| = 5
    b = torch.nn.Parameter(torch.tensor([1.0, -1.0]))    # 1-D: plain momentum SGD
    w.grad, b.grad = torch.tensor([[0.0, 1.0]]), torch.tensor([0.5, 0.5])
    opt = LARS([w, b], lr=0.1, momentum=0.9, weight_decay=0.5, eta=0.01)
    opt.step()
    g = torch.tensor([[0.0, 1.0]]) + 0.5 * torch.tensor([[3.0, 4.0]])   # decay added
    trust = 0.01 * 5.0 / g.norm()
    torch.testing.assert_close(w.data, torch.tensor([[3.0, 4.0]]) - 0.1 * trust * g)
    torch.testing.assert_close(b.data, torch.tensor([0.95, -1.05]))
    # second step: momentum buffer carries the first update
    w.grad, b.grad = torch.zeros(1, 2), torch.zeros(2)
    before = b.data.clone()
    opt.step()
    torch.testing.assert_close(b.data, before - 0.1 * 0.9 * torch.tensor([0.5, 0.5]))


def test_optimizers_by_name_skip_frozen_parameters():
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    live = torch.nn.Parameter(torch.ones(2))
    for name in ("adamw", "lars", "sgd"):
        opt = make_optimizer(name, [frozen, live], 0.1, 0.0)
        assert [p for g in opt.param_groups for p in g["params"]] == [live]
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("adam8bit", [live], 0.1, 0.0)


def test_learning_rate_schedule():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(99, 100, 10, 1.0) < 0.01
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)          # half-way down the cosine
    assert lr_at(55, 100, 10, 1.0, 0.2) == pytest.approx(0.6)     # decays to 0.2 instead
    assert lr_at(100, 100, 10, 1.0, 0.2) == pytest.approx(0.2)


def test_the_constant_schedule_warms_up_then_holds():
    """The decoders' shape (guided diffusion, RCDM): the ramp, then base_lr to the end."""
    assert lr_at(0, 100, 10, 1.0, decay="constant") == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0, decay="constant") == 1.0
    assert lr_at(99, 100, 10, 1.0, decay="constant") == 1.0
    assert lr_at(0, 100, 0, 0.5, decay="constant") == 0.5  # no warm-up

