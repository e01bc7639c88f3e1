"""How the workflow's main process finds its SLURM run ID (dejavu.cluster.slurm_run_id):
read from Snakemake's executor object, which no public API gives; where a Snakemake version
moves it, a warning names the version instead of orphan cancellation switching off
silently. (The SLURM tier cancels real orphans with the ID read from the real executor.)"""

from importlib.metadata import version
from types import SimpleNamespace

import pytest

from dejavu.cluster import slurm_run_id

pytestmark = pytest.mark.unit


def workflow(plugin: str, executor) -> SimpleNamespace:
    """The two attributes of a Snakemake workflow that slurm_run_id reads."""
    return SimpleNamespace(executor_plugin=SimpleNamespace(name=plugin),
                           scheduler=SimpleNamespace(_executor=executor))


def test_the_run_id_of_the_slurm_executor():
    assert slurm_run_id(workflow("slurm", SimpleNamespace(run_uuid="run-7"))) == "run-7"


def test_other_executors_have_none_and_no_warning(recwarn):
    assert slurm_run_id(workflow("local", SimpleNamespace())) is None
    assert slurm_run_id(SimpleNamespace()) is None  # a dry run: no plugin, no scheduler
    assert not recwarn.list


def test_a_run_id_moved_elsewhere_warns_naming_the_snakemake_version():
    with pytest.warns(RuntimeWarning, match=f"Snakemake {version('snakemake')}.*scancel"):
        assert slurm_run_id(workflow("slurm", SimpleNamespace(uuid="moved"))) is None
