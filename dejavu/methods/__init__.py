"""SSL methods, by name. Each is a `Method` (see base.py); importing this package registers
the built-in ones: vicreg, simclr, barlow_twins, byol, dino and the supervised baseline."""

from . import barlow_twins, byol, dino, simclr, supervised, vicreg  # noqa: F401  (register)
from .base import METHODS, Method, Progress, TwoViewMethod, get, load_modules, register, source_file

__all__ = ["METHODS", "Method", "Progress", "TwoViewMethod", "get", "load_modules",
           "register", "source_file"]
