import io
import subprocess
import sys

import pytest
import torch

from dejavu.core.optim import LARS, SGD, AdamW, lr_at, make_optimizer

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


def net_and_batches(seed: int = 0):
    """A small net with weights of several shapes (one unused: it never has a gradient),
    and the same six batches for each optimizer compared."""
    torch.manual_seed(seed)
    net = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(3, 4, 3), "fc": torch.nn.Linear(4, 2),
                               "unused": torch.nn.Linear(2, 2)})
    batches = [torch.randn(5, 3, 6, 6) for _ in range(6)]
    return net, batches


def trained(net, opt, batches, lrs=None) -> list[torch.Tensor]:
    """Weights after one step per batch, the learning rate set before each step as the
    training loops set it."""
    for i, x in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = lrs[i] if lrs else group["lr"]
        opt.zero_grad()
        net["fc"](net["conv"](x).mean((2, 3))).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("ours, theirs", [
    (lambda p: AdamW(p, lr=0.01, weight_decay=0.1),
     lambda p, **kw: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, **kw)),
    (lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
     lambda p, **kw: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01, **kw)),
    (lambda p: SGD(p, lr=0.05), lambda p, **kw: torch.optim.SGD(p, lr=0.05, **kw))],
    ids=["adamw", "sgd-momentum", "sgd-plain"])
def test_adamw_and_sgd_give_torchs_weights_bit_for_bit(ours, theirs):
    # torch updates one tensor at a time on a CPU and with grouped (foreach) kernels on a
    # GPU; both forms of torch's optimizer are compared, with a changing learning rate
    lrs = [0.01, 0.03, 0.02, 0.02, 0.005, 0.001]
    net, batches = net_and_batches()
    expected = trained(net, theirs(net.parameters(), foreach=False), batches, lrs)
    for opt in (ours, lambda p: theirs(p, foreach=True)):
        net, batches = net_and_batches()
        got = trained(net, opt(net.parameters()), batches, lrs)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize("make", [lambda p: AdamW(p, lr=0.01, weight_decay=0.1),
                                  lambda p: SGD(p, lr=0.05, momentum=0.9),
                                  lambda p: LARS(p, lr=0.05, weight_decay=0.1)],
                         ids=["adamw", "sgd", "lars"])
def test_a_saved_state_continues_to_the_same_weights(make):
    net, batches = net_and_batches()
    straight = trained(net, make(net.parameters()), batches)
    net, batches = net_and_batches()
    trained(net, first := make(net.parameters()), batches[:3])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make(net.parameters())
    second.load_state_dict(torch.load(buffer, weights_only=True))
    assert all(torch.equal(a, b) for a, b in zip(trained(net, second, batches[3:]), straight))


def test_torchs_adamw_state_continues_here():
    # a resume state saved before dejavu had its own AdamW continues as torch would have
    net, batches = net_and_batches()
    straight = trained(net, torch.optim.AdamW(net.parameters(), lr=0.01), batches)
    net, batches = net_and_batches()
    trained(net, theirs := torch.optim.AdamW(net.parameters(), lr=0.01), batches[:3])
    ours = AdamW(net.parameters(), lr=0.01)
    ours.load_state_dict(theirs.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(trained(net, ours, batches[3:]), straight))
    with pytest.raises(ValueError, match="holds 6 parameters, this model 2"):
        AdamW(net["fc"].parameters(), lr=0.01).load_state_dict(ours.state_dict())


def test_a_step_of_each_optimizer_leaves_torchs_compiler_unimported():
    """What these optimizers are for: torch.optim's import torch._dynamo, 2.3 CPU-s in every
    process that trains (the tests above use torch's, so this one runs in a fresh process)."""
    code = ("import sys, torch\n"
            "from dejavu.core.optim import make_optimizer\n"
            "for name in ('adamw', 'sgd', 'lars'):\n"
            "    net = torch.nn.Linear(3, 2)\n"
            "    opt = make_optimizer(name, net.parameters(), 0.1, 0.01)\n"
            "    net(torch.randn(4, 3)).sum().backward()\n"
            "    opt.step()\n"
            "    opt.load_state_dict(opt.state_dict())\n"
            "    opt.zero_grad()\n"
            "print('torch._dynamo' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"


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

