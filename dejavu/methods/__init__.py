"""SSL objectives. Each method maps the two views' projector outputs (N, D) to a scalar loss;
its keyword arguments come from `train.loss.<method>` in the config."""

from .barlow_twins import barlow_twins_loss
from .simclr import nt_xent_loss
from .vicreg import vicreg_loss

METHODS = {"vicreg": vicreg_loss, "simclr": nt_xent_loss, "barlow_twins": barlow_twins_loss}
