"""Each method's loss against its paper's formula written loop by loop, and the method
registry."""

import math

import pytest
import torch

from dejavu.training.methods import METHODS
from dejavu.training.methods.barlow_twins import barlow_twins_loss
from dejavu.training.methods.simclr import nt_xent_loss
from dejavu.training.methods.vicreg import vicreg_loss

pytestmark = pytest.mark.unit


def nt_xent_oracle(za, zb, tau):
    z = torch.cat([za, zb])
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        sims = [math.exp(float(z[i] @ z[k]) / tau) for k in range(n2) if k != i]
        total += -math.log(math.exp(float(z[i] @ z[j]) / tau) / sum(sims))
    return total / n2


def barlow_oracle(za, zb, lam):
    n, d = za.shape
    a = (za - za.mean(0)) / za.std(0, unbiased=False)
    b = (zb - zb.mean(0)) / zb.std(0, unbiased=False)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = float(sum(a[k, i] * b[k, j] for k in range(n))) / n
            loss += (1 - c) ** 2 if i == j else lam * c ** 2
    return loss


@pytest.mark.parametrize("n, d", [(2, 3), (4, 5), (7, 2)])
def test_nt_xent_matches_oracle(n, d):
    g = torch.Generator().manual_seed(n * d)
    za, zb = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert float(nt_xent_loss(za, zb, 0.15)) == pytest.approx(nt_xent_oracle(za, zb, 0.15),
                                                              rel=1e-4)


@pytest.mark.parametrize("n, d", [(3, 3), (6, 4)])
def test_barlow_twins_matches_oracle(n, d):
    g = torch.Generator().manual_seed(n + d)
    za, zb = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert float(barlow_twins_loss(za, zb, 0.0051)) == pytest.approx(
        barlow_oracle(za, zb, 0.0051), rel=1e-3)


LOSSES = {"vicreg": vicreg_loss, "simclr": nt_xent_loss, "barlow_twins": barlow_twins_loss}


def test_aligned_views_score_better_than_random_ones():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=g)
    other = torch.randn(16, 8, generator=g)
    for name, loss in LOSSES.items():
        assert float(loss(z, z + 0.01 * other)) < float(loss(z, other)), name


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_batch_of_one_is_refused(name):
    with pytest.raises(ValueError, match="at least 2"):
        LOSSES[name](torch.randn(1, 4), torch.randn(1, 4))


BUILT_INS = ("vicreg", "simclr", "barlow_twins", "byol", "dino", "supervised", "mae", "clip",
             "siglip")
# the methods trained on images (and class labels) with a projector (MAE's tests:
# tests/test_mae.py; CLIP's and SigLIP's, on captions: tests/test_vlm_models.py)
PROJECTED = BUILT_INS[:-3]


def test_every_built_in_method_is_known_and_registers_when_used():
    from dejavu.training.methods import get, names
    assert set(BUILT_INS) <= set(names())
    for name in BUILT_INS:
        assert get(name).name == name and METHODS[name] is get(name)


@pytest.mark.parametrize("name", BUILT_INS)
def test_the_torch_free_catalog_agrees_with_each_method_class(name):
    """What the config check reads at parse time is what the class trains with; a loss
    function's keyword defaults are its method's options."""
    from dejavu.training.methods import BUILT_IN, get
    from dejavu.training.methods.base import SETTINGS, LossFunctionMethod, objective_options
    cls = get(name)
    for key in SETTINGS:
        assert getattr(cls, key) == getattr(BUILT_IN[name], key), key
    if issubclass(cls, LossFunctionMethod):
        assert objective_options(cls.loss_fn) == BUILT_IN[name].options


@pytest.mark.parametrize("name", BUILT_INS)
def test_catalog_and_class_find_the_same_problems(name):
    from dejavu.training.methods import BUILT_IN, get
    for projector, batch, options in (([16, 1], 1, {"nope": 1}), ([16, 8], 8, {})):
        assert BUILT_IN[name].check(projector, batch, options) == \
            get(name).check(projector, batch, options)


def test_checking_a_config_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, yaml, dejavu.config, dejavu.cluster, dejavu.core.epochs, dejavu.data.sources\n"
            "config = yaml.safe_load(open('config.yaml'))\n"
            "dejavu.config.validate(config, 'workflow/schemas/config.schema.yaml')\n"
            "dejavu.config.check(config)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    from conftest import REPO
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


# --- BYOL, DINO, the supervised baseline -----------------------------------------------

def byol_oracle(p, z):
    total = 0.0
    for i in range(len(p)):
        pn = p[i] / math.sqrt(float(p[i] @ p[i]))
        zn = z[i] / math.sqrt(float(z[i] @ z[i]))
        total += float(((pn - zn) ** 2).sum())
    return total / len(p)


def test_byol_loss_matches_normalised_mse():
    from dejavu.training.methods.byol import byol_loss
    g = torch.Generator().manual_seed(1)
    p, z = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    assert float(byol_loss(p, z)) == pytest.approx(byol_oracle(p, z), rel=1e-5)


def test_byol_momentum_schedule_and_target_update():
    from dejavu.training.methods import Progress, get
    from dejavu.training.methods.byol import target_momentum
    total = 11
    for k in (0, 3, 10):
        expected = 1 - (1 - 0.996) * (math.cos(math.pi * k / (total - 1)) + 1) / 2
        assert target_momentum(k, total, 0.996) == pytest.approx(expected)
    assert target_momentum(0, total, 0.996) == pytest.approx(0.996)
    assert target_momentum(total - 1, total, 0.996) == pytest.approx(1.0)
    byol = get("byol")(small_encoder(), predictor_hidden=8)
    with torch.no_grad():
        for p in byol.model.parameters():
            p.add_(1.0)  # online moves away from the target
    before = {n: p.clone() for n, p in byol.target.named_parameters()}
    online = dict(byol.model.named_parameters())
    byol.after_step(Progress(3, total, 1, 1))
    tau = target_momentum(3, total, 0.996)
    for name, p in byol.target.named_parameters():
        torch.testing.assert_close(p, tau * before[name] + (1 - tau) * online[name])


def small_encoder(dims=(16, 8)):
    from dejavu.training.train import init_model
    return init_model("convnet", list(dims), 4, 0)


def dino_oracle(teacher, student, center, t_temp, s_temp):
    """Mean over (teacher view i, student view j != i) and images of
    -sum_k softmax((t - c) / t_temp)_k log softmax(s / s_temp)_k, written element by element."""
    terms = []
    for i, t in enumerate(teacher):
        for j, s in enumerate(student):
            if i == j:
                continue
            for b in range(t.shape[0]):
                tw = [math.exp((float(t[b, k]) - float(center[k])) / t_temp)
                      for k in range(t.shape[1])]
                sw = [math.exp(float(s[b, k]) / s_temp) for k in range(s.shape[1])]
                terms.append(-sum(tw[k] / sum(tw) * math.log(sw[k] / sum(sw))
                                  for k in range(t.shape[1])))
    return sum(terms) / len(terms)


def test_dino_loss_centering_and_sharpening_match_the_paper():
    from dejavu.training.methods.dino import DINOLoss
    g = torch.Generator().manual_seed(2)
    teacher = [torch.randn(3, 5, generator=g) for _ in range(2)]
    student = [torch.randn(3, 5, generator=g) for _ in range(4)]  # 2 global + 2 local views
    loss = DINOLoss(5, student_temp=0.1, center_momentum=0.9)
    loss.center.fill_(0.2)
    center = loss.center.flatten().clone()
    value = float(loss(teacher, student, 0.07))
    assert value == pytest.approx(dino_oracle(teacher, student, center, 0.07, 0.1), rel=1e-4)
    # the centre moves towards the teacher's batch mean: c <- m c + (1 - m) mean
    expected = 0.9 * center + 0.1 * torch.cat(teacher).mean(0)
    torch.testing.assert_close(loss.center.flatten(), expected)


def test_dino_loss_needs_two_distinct_views():
    from dejavu.training.methods.dino import DINOLoss
    x = [torch.randn(2, 4)]
    with pytest.raises(ValueError, match="two views"):
        DINOLoss(4, 0.1, 0.9)(x, x, 0.04)


def test_momentum_stays_one_past_the_last_step_and_for_a_single_step_run():
    from dejavu.training.methods.byol import target_momentum
    assert target_momentum(12, 11, 0.996) == 1.0
    assert target_momentum(0, 1, 0.996) == 1.0


def test_dino_teacher_temperature_warms_up_linearly():
    from dejavu.training.methods.dino import teacher_temperature
    assert teacher_temperature(1, 5, 0.04, 0.07) == pytest.approx(0.04)
    assert teacher_temperature(3, 5, 0.04, 0.07) == pytest.approx(0.055)
    assert teacher_temperature(5, 5, 0.04, 0.07) == pytest.approx(0.07)
    assert teacher_temperature(9, 5, 0.04, 0.07) == pytest.approx(0.07)
    assert teacher_temperature(1, 0, 0.04, 0.07) == pytest.approx(0.07)


def test_dino_multi_crop_views_and_unit_norm_prototypes():
    from dejavu.training.augment import AugmentConfig
    from dejavu.training.methods import get
    dino = get("dino")(small_encoder(), prototypes=32, local_crops=3, local_size=0.5)
    views = dino.make_views(torch.rand(4, 3, 16, 16), AugmentConfig(),
                            torch.Generator().manual_seed(0), slice(0, 4), 4)
    assert [v.shape[-1] for v in views] == [16, 16, 8, 8, 8]
    w = dino.student.prototypes.linear.weight
    torch.testing.assert_close(w.norm(dim=1), torch.ones(32))
    assert dino.encoder() is dino.teacher.encoder  # the teacher is what is evaluated


def test_supervised_loss_is_cross_entropy_of_both_views():
    from dejavu.training.methods import Progress, get
    sup = get("supervised")(small_encoder(), classes=3)
    views = [torch.rand(6, 3, 16, 16), torch.rand(6, 3, 16, 16)]
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = sup(views, labels, Progress(0, 1, 1, 1)).item()
    expected = 0.0
    for v in views:
        logits = sup.classifier(sup.model(v)[1])
        for row, y in zip(logits, labels):
            expected += -(row[y] - torch.logsumexp(row, 0)).item() / 12
    assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("head, layers", [(None, ["BatchNorm1d", "ReLU", "Linear"]),
                                          ("linear", ["Linear"])])
def test_the_supervised_head_is_the_papers_unless_asked_for_a_bare_linear_layer(head, layers):
    """The paper's code classifies the projector output through BatchNorm, ReLU, Linear:
    the default. Between the attacked output and the logits there is then a nonlinearity."""
    from dejavu.training.methods import get
    sup = get("supervised")(small_encoder(), classes=3, **({"head": head} if head else {}))
    modules = [m for m in sup.classifier.modules() if not isinstance(m, torch.nn.Sequential)]
    assert [type(m).__name__ for m in modules] == layers
    assert modules[-1].in_features == sup.model.arch["projector_dims"][-1]
    with pytest.raises(ValueError, match="train.loss.supervised.head"):
        get("supervised")(small_encoder(), classes=3, head="mlp")


@pytest.mark.parametrize("name, projector, batch, options, key", [
    ("vicreg", [16, 1], 8, {}, "model.projector"),
    ("vicreg", [16, 8], 1, {}, "train.batch_size"),
    ("byol", [16, 8], 8, {"momentun": 0.9}, "train.loss.byol"),
    ("dino", [16, 8], 8, {"prototypes": 1}, "train.loss.dino.prototypes"),
])
def test_settings_a_method_cannot_train_with_are_named(name, projector, batch, options, key):
    from dejavu.training.methods import get
    problems = get(name).check(projector, batch, options)
    assert problems and problems[0].startswith(key)


def test_a_method_from_a_user_file_registers_under_its_name(tmp_path):
    from dejavu.training.methods import METHODS, load_modules, source_file
    path = tmp_path / "mine.py"
    path.write_text(
        "from dejavu.training.methods import TwoViewMethod, register\n"
        "@register\n"
        "class Mine(TwoViewMethod):\n"
        "    name = 'mine_for_test'\n"
        "    options = {'weight': 1.0}\n"
        "    def objective(self, z_a, z_b):\n"
        "        return self.weight * (z_a - z_b).pow(2).mean()\n")
    load_modules([str(path)])
    assert source_file("mine_for_test") == str(path)
    method = METHODS.pop("mine_for_test")(small_encoder(), weight=2.0)
    assert method.weight == 2.0 and source_file("vicreg") is None


class Float32Net(torch.nn.Module):
    """A network that stays in float32 under autocast (h = z = a linear map of the view), so
    whatever changes under bf16 autocast is the loss's own arithmetic."""

    def __init__(self, d_in: int = 48, d: int = 256):
        super().__init__()
        self.linear = torch.nn.Linear(d_in, d)

    def forward(self, v):
        with torch.autocast(v.device.type, enabled=False):
            z = self.linear(v.flatten(1).float()) * 3
        return z, z


@pytest.mark.parametrize("name", ["vicreg", "simclr", "barlow_twins"])
def test_the_loss_runs_in_float32_under_bf16_autocast(name):
    """On CUDA training runs under bf16 autocast. The loss's covariance, cross-correlation
    and similarity matmuls must not: with the same float32 projector outputs, the loss
    under CPU bf16 autocast equals the float32 loss (bf16 matmuls would move it by about
    1e-3 relative)."""
    from dejavu.training.methods import Progress, get
    torch.manual_seed(0)
    method = get(name)(Float32Net())
    views = [torch.randn(64, 3, 4, 4) for _ in range(2)]
    progress = Progress(0, 10, 1, 1)
    plain = method(views, None, progress)
    with torch.autocast("cpu", torch.bfloat16):
        mixed = method(views, None, progress)
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(plain.item(), rel=1e-6, abs=1e-7)


# One training step's loss of the real model (ConvNet, bf16 convolutions and projector)
# under CPU bf16 autocast, against float32. Measured here: the networks' bf16 rounding
# moves it by 0.0004 % (VICReg) to 0.2 % (SimCLR, Barlow Twins), and by 1.8 % for DINO,
# whose sharp softmax temperatures (0.1 student, 0.04 teacher) amplify rounded logits.
BF16_STEP_TOLERANCE = {"dino": 0.05}  # relative; 0.01 for the others


@pytest.mark.parametrize("name", PROJECTED)
def test_a_training_step_under_bf16_autocast_matches_float32(name):
    from dejavu.training.methods import Progress, get
    torch.manual_seed(0)
    method = get(name)(small_encoder((64, 64)), classes=3)
    views = [torch.rand(16, 3, 16, 16) for _ in range(2)]
    labels = torch.arange(16) % 3
    progress = Progress(0, 10, 1, 1)
    plain = method(views, labels, progress)
    with torch.autocast("cpu", torch.bfloat16):
        mixed = method(views, labels, progress)
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed)
    assert mixed.item() == pytest.approx(plain.item(), rel=BF16_STEP_TOLERANCE.get(name, 0.01))
