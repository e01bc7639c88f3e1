"""SSL objectives. Each method maps two batches of projector outputs to a scalar loss."""

from .vicreg import vicreg_loss

METHODS = {"vicreg": vicreg_loss}
