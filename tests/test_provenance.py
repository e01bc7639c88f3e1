"""What a run records about the machine (dejavu.core.provenance): the FAISS distribution
actually installed, the CUDA version torch was built for and the GPU models -- read without
importing torch or FAISS, checked here against what torch itself says; and the config check
that refuses the FAISS backend where no FAISS is installed."""

import importlib.metadata
import logging

import pytest
import torch

from dejavu.core import provenance
from dejavu.core.models import pick_device

pytestmark = pytest.mark.unit


def test_the_environment_is_what_torch_and_the_installed_distributions_say():
    env = provenance.environment()
    assert env["faiss"] == f"faiss-cpu {importlib.metadata.version('faiss-cpu')}"
    assert env["torch"] == importlib.metadata.version("torch")
    assert env["torch_cuda"] == (torch.version.cuda or "none (a CPU-only build)")
    gpus = provenance.gpu_models()
    assert env["gpus"] == (gpus or "none")
    if not torch.cuda.is_available():
        assert torch.cuda.device_count() == 0 or gpus  # a driver without a usable device
    else:
        assert len(gpus) >= torch.cuda.device_count()


def test_gpu_models_are_read_from_the_drivers_entries(tmp_path):
    for bus, model in (("0000:41:00.0", "NVIDIA H200"), ("0000:01:00.0", "NVIDIA H100 PCIe")):
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "information").write_text(
            f"Model: \t\t {model}\nIRQ:  \t\t 150\nGPU UUID: \t GPU-1234\n")
    assert provenance.gpu_models(tmp_path) == ["NVIDIA H100 PCIe", "NVIDIA H200"]
    assert provenance.gpu_models(tmp_path / "absent") == []


def test_without_faiss_the_faiss_backend_is_refused_naming_the_key(monkeypatch):
    import copy

    import yaml

    from conftest import REPO
    from dejavu import config as checks
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    checks.validate(base, str(REPO / "workflow/schemas/config.schema.yaml"))
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)  # as if not installed
    assert provenance.faiss_distribution() is None
    with pytest.raises(checks.ConfigError, match=r"knn.backend: auto searches with FAISS "
                                                 r"here, but FAISS is not installed"):
        checks.check(copy.deepcopy(base), workdir=str(REPO))
    torch_backend = copy.deepcopy(base)
    torch_backend["knn"]["backend"] = "torch"
    checks.check(torch_backend, workdir=str(REPO))  # the torch backend needs no FAISS


def test_a_jobs_log_names_its_device(caplog):
    caplog.set_level(logging.INFO, logger="dejavu.core.models")
    pick_device("cpu")
    assert f"device: cpu (torch {torch.__version__}" in caplog.text
