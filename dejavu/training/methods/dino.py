"""DINO: Caron et al., *Emerging Properties in Self-Supervised Vision Transformers*,
ICCV 2021 (arXiv 2104.14294): self-distillation with a momentum teacher, centering and
sharpening of the teacher's output, and optional multi-crop."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import gather
from .base import Method, loss_precision, register
from .byol import momentum_update, target_momentum


class Prototypes(nn.Module):
    """DINO's last layer: L2-normalise the projector output, then a weight-normalised
    linear map (unit-norm rows) to `count` prototype scores."""

    def __init__(self, in_dim: int, count: int):
        super().__init__()
        self.linear = nn.utils.parametrizations.weight_norm(
            nn.Linear(in_dim, count, bias=False))
        # the norm of each row is fixed to 1, as in the paper's code
        self.linear.parametrizations.weight.original0.data.fill_(1)
        self.linear.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(F.normalize(z, dim=-1))


class Student(nn.Module):
    def __init__(self, encoder: nn.Module, prototypes: Prototypes):
        super().__init__()
        self.encoder, self.prototypes = encoder, prototypes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prototypes(self.encoder(x)[1])


class DINOLoss(nn.Module):
    """Cross-entropy H(P_t, P_s) between the teacher's centred, sharpened distribution over
    prototypes, P_t = softmax((t - c) / T_t), and the student's, P_s = softmax(s / T_s),
    averaged over images and every (teacher view i, student view j) pair with i != j.
    After each call the centre c moves towards the teacher's batch mean:
    c <- m c + (1 - m) mean(t). The outputs are the gathered ones of every process, so the
    mean is the global batch's."""

    def __init__(self, dim: int, student_temp: float, center_momentum: float):
        super().__init__()
        self.student_temp, self.center_momentum = student_temp, center_momentum
        self.register_buffer("center", torch.zeros(1, dim))

    def forward(self, teacher: list[torch.Tensor], student: list[torch.Tensor],
                teacher_temp: float) -> torch.Tensor:
        targets = [F.softmax((t - self.center) / teacher_temp, dim=-1) for t in teacher]
        logs = [F.log_softmax(s / self.student_temp, dim=-1) for s in student]
        terms = [-(p * log_q).sum(dim=-1).mean() for i, p in enumerate(targets)
                 for j, log_q in enumerate(logs) if i != j]
        if not terms:
            raise ValueError("the DINO loss needs two views that are not the same one")
        loss = torch.stack(terms).mean()
        with torch.no_grad():
            batch_mean = torch.cat(teacher).mean(dim=0, keepdim=True)
            self.center.mul_(self.center_momentum).add_(batch_mean,
                                                        alpha=1 - self.center_momentum)
        return loss


def teacher_temperature(epoch: int, warmup_epochs: int, start: float, end: float) -> float:
    """Linear warm-up of the teacher temperature over the first epochs (1-based), then flat."""
    if epoch > warmup_epochs or warmup_epochs == 0:
        return end
    return start + (end - start) * (epoch - 1) / max(1, warmup_epochs - 1)


@register
class DINO(Method):
    """The student (encoder + prototypes) matches the teacher's centred, sharpened
    distribution over prototypes across views; the teacher is a momentum copy of the student.
    With `local_crops` > 0 the student also sees that many small crops (the teacher only the
    two global views). The teacher's encoder is what is saved, as in the paper."""
    name = "dino"

    def __init__(self, model, classes=0, **options):
        super().__init__(model, classes, **options)
        self.student = Student(model, Prototypes(model.arch["projector_dims"][-1],
                                                 self.prototypes))
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.loss = DINOLoss(self.prototypes, self.student_temp, self.center_momentum)

    def view_configs(self, augment):
        local = augment.view(1, scale=tuple(self.local_scale), size=self.local_size,
                             blur_prob=0.5, solarize_prob=0.0)
        return [augment.view(0), augment.view(1)] + [local] * self.local_crops

    def forward(self, views, labels, progress):
        with torch.no_grad():
            teacher = [gather(self.teacher(v).float()) for v in views[:2]]
        student = [gather(self.student(v).float()) for v in views]
        temp = teacher_temperature(progress.epoch, self.warmup_teacher_temp_epochs,
                                   self.warmup_teacher_temp, self.teacher_temp)
        with loss_precision(student[0]):
            return self.loss(teacher, student, temp)

    @torch.no_grad()
    def after_step(self, progress):
        momentum_update(self.student, self.teacher,
                        target_momentum(progress.step, progress.total_steps, self.momentum))

    def encoder(self):
        return self.teacher.encoder
