"""What a run was computed with, beyond package versions: which FAISS distribution provides
the `faiss` module (faiss-cpu and faiss-gpu install the same one), the CUDA version torch
was built for, and the GPUs the machine has. Torch-free and quick (no CUDA call, no import
of torch or FAISS): the report and the config check ask it."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
from pathlib import Path

FAISS_DISTRIBUTIONS = ("faiss-cpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss-gpu", "faiss")


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def faiss_distribution() -> str | None:
    """'<distribution> <version>' of the installed FAISS, or None when there is none."""
    try:
        if importlib.util.find_spec("faiss") is None:
            return None
    except (ImportError, ValueError):  # a module masked as missing (sys.modules entry None)
        return None
    for name in FAISS_DISTRIBUTIONS:
        version = version_of(name)
        if version:
            return f"{name} {version}"
    return "faiss (built from source: no distribution metadata)"


def torch_cuda() -> str | None:
    """The CUDA version torch was built for (torch.version.cuda), read from its version
    file without importing torch; None for a CPU-only build or no torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        tree = ast.parse(path.read_text())
    except OSError:
        return None
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "cuda" for t in targets):
                return ast.literal_eval(node.value)
    return None


def gpu_models(driver: str | Path = "/proc/driver/nvidia/gpus") -> list[str]:
    """The model of every GPU the NVIDIA driver lists (its /proc entries), in bus order."""
    root = Path(driver)
    if not root.is_dir():
        return []
    models = []
    for entry in sorted(root.iterdir()):
        try:
            text = (entry / "information").read_text()
        except OSError:
            continue
        model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                      if line.startswith("Model:")), "unknown model")
        models.append(model)
    return models


def environment() -> dict:
    """The machine's side of a run's provenance."""
    return {"faiss": faiss_distribution() or "not installed",
            "torch": version_of("torch") or "not installed",
            "torch_cuda": torch_cuda() or "none (a CPU-only build)",
            "gpus": gpu_models() or "none"}
