"""A method of your own in one file: alignment + uniformity on the hypersphere (Wang and
Isola, *Understanding Contrastive Representation Learning through Alignment and Uniformity
on the Hypersphere*, ICML 2020, eq. (4)-(5)).

Use it with, in your config:

    train:
      method_modules: [examples/align_uniform.py]
      methods: [vicreg, align_uniform]
      loss:
        align_uniform: {alpha: 2, t: 2, uniformity_weight: 1.0}
"""

import torch
import torch.nn.functional as F

from dejavu.training.methods import TwoViewMethod, register


@register
class AlignUniform(TwoViewMethod):
    name = "align_uniform"                 # the {method} wildcard and train.methods entry
    options = {"alpha": 2.0, "t": 2.0, "uniformity_weight": 1.0}  # train.loss.align_uniform

    def objective(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        # projector outputs of two views of the same images, (N, D) each
        a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
        align = (a - b).norm(dim=1).pow(self.alpha).mean()
        uniform = sum(torch.pdist(z).pow(2).mul(-self.t).exp().mean().log() for z in (a, b)) / 2
        return align + self.uniformity_weight * uniform
