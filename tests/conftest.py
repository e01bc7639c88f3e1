"""Helpers to run the real workflow in a temporary copy of the repository."""

from __future__ import annotations

import importlib.util
import os

# Before torch loads OpenMP: threads that wait sleep instead of spinning. The suite runs
# its long workflow runs beside the other tests, and spinning threads of one process make
# the other's wait for the scheduler (the Snakefile sets it for every job, see there).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# A worker of the parallel unit tier (pytest_xdist_auto_num_workers below): one thread of
# torch per worker and as many workers as cores, so the workers' threads do not contend.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
import shutil
import signal
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

import machine_load

REPO = Path(__file__).resolve().parents[1]


def compile_package() -> None:
    """Write the package's bytecode once, before the suite starts its ~600 processes (jobs,
    Snakemake runs, spawned workers). Where PYTHONDONTWRITEBYTECODE is set (as in this
    project's CI image) no process writes it, and each one compiled the modules it imports
    from source again: about 0.2 CPU-s per job of the tiny run (215 -> 197 CPU-s, measured
    with `time snakemake -c2 --configfile tiny.yaml`). py_compile writes whatever that
    setting says; an edited module's bytecode is stale by its source's time stamp and
    recompiled as usual."""
    import compileall
    compileall.compile_dir(str(REPO / "dejavu"), quiet=1)


compile_package()
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config", "workflow", "envs", "slurm",
                  "profiles")


def bench_script(name: str):
    """bench/<name>.py imported as a module (the benches are scripts, not a package; their
    sibling modules are found as when one is run)."""
    if str(REPO / "bench") not in sys.path:
        sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_workflow(dst: Path) -> Path:
    """A runnable copy of the workflow (the package itself is installed)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / name)
    for name in ("tiny.yaml", "tiny_imagenet.yaml", "vlm_tiny.yaml"):
        shutil.copy(REPO / "tests" / name, dst / name)
    return dst


def snakemake(cwd: Path, *args: str, check: bool = True, background: bool = False,
              nice: bool = True) -> subprocess.CompletedProcess:
    """Run Snakemake in `cwd`. `background`: a head start's run (popen)."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    proc = popen(cmd, cwd, subprocess.PIPE, background, nice)
    try:
        out, err = proc.communicate()
    finally:
        BACKGROUND.discard(proc)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out[-3000:]}\n"
                             f"{err[-5000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


BACKGROUND: set[subprocess.Popen] = set()  # processes of head starts still running


def popen(cmd: list[str], cwd: Path, stdout, background: bool = False,
          nice: bool = True) -> subprocess.Popen:
    """Start `cmd`. A background one runs in a process group of its own, tracked in
    BACKGROUND so that the session's end can kill what is left of it, and, unless the
    foreground needs it soon (`nice=False`), niced: the tests in the foreground keep the CPU
    they need and it takes what they leave."""
    if background and nice:
        cmd = ["nice", "-n", str(BACKGROUND_NICENESS), *cmd]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, text=True,
                            stderr=subprocess.PIPE if stdout == subprocess.PIPE
                            else subprocess.STDOUT, start_new_session=background)
    if background:
        BACKGROUND.add(proc)
    return proc


BACKGROUND_NICENESS = 5  # about a quarter of the CPU against a busy foreground process


def planned_jobs(cwd: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of what a dry run says it would run."""
    out = snakemake(cwd, "-n", *args).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    jobs = dict(line.split() for line in table if line.strip())
    jobs.pop("total", None)
    return {rule: int(n) for rule, n in jobs.items()}


KEYS = ["method", "backbone", "train_size", "seed", "embedding", "k", "crop_mode", "epoch",
        "control"]

# The tiny config without the stages after the score: runs that test faults and reruns
# compare their summary with the tiny run's (equal_where_computed)
SLIM = {"rcdm": {"enabled": False}, "onemodel": {"enabled": False},
        "sslmem": {"enabled": False}, "probe": {"enabled": False}}
# Fewer jobs per stage: one embedding, one shard job per store, no untrained control. For
# runs that test something other than the grid (the tiny run covers it)
LEAN = {"knn": {"embeddings": ["projector"]}, "embed": {"jobs": 1},
        "controls": {"untrained": False}}


def equal_where_computed(summary: pd.DataFrame, reference: pd.DataFrame) -> None:
    """`summary`, of a run that computed less (fewer stages, embeddings or controls), equals
    `reference` bit for bit in its rows and in every column it filled."""
    filled = [c for c in summary.columns if summary[c].notna().any()]
    assert len(summary) > 0 and "score" in filled
    same = reference.merge(summary[KEYS], on=KEYS, how="right")
    pd.testing.assert_frame_equal(summary[filled].reset_index(drop=True),
                                  same[filled].reset_index(drop=True), check_exact=True)


def same_training_states(work: Path, reference: Path, results: str = "results") -> int:
    """Every training state file of `work` (models and their weights, optimizer and loss
    history) equals the same file of the run in `reference`, bit for bit; how many."""
    import torch
    states = sorted((work / results).glob("*/models/**/states/*.pt"))
    for path in states:
        ours = torch.load(path, weights_only=True)
        theirs = torch.load(reference / "results" / path.relative_to(work / results),
                            weights_only=True)
        assert ours["state_dict"].keys() == theirs["state_dict"].keys(), path
        for name, value in theirs["state_dict"].items():
            assert torch.equal(value, ours["state_dict"][name]), (path, name)
        assert ours["training"]["history"] == theirs["training"]["history"], path
    return len(states)


def edit_config(path: Path, **changes: dict) -> None:
    """Update sections of a YAML config file in place."""
    config = yaml.safe_load(path.read_text()) or {}
    for section, values in changes.items():
        config.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(config))


CLUSTER_OPT_IN = "DEJAVU_TEST_SLURM"


def cluster_allowed() -> bool:
    """Whether the tests may install and start a SLURM cluster here: in CI (CI=true), or
    when the user asks for it; a user's plain `pytest` skips the SLURM tier, saying how."""
    return os.environ.get("CI") == "true" or os.environ.get(CLUSTER_OPT_IN) == "1"


@pytest.fixture(scope="session", autouse=True)
def test_cluster(request):
    """The single-node SLURM cluster of the tests (tests/slurm_cluster.py), up for the whole
    session; yields None when it runs, else why not. Only where allowed (`cluster_allowed`);
    installed (apt) when a SLURM test is selected. Where SLURM's client tools are installed, the executor plugin runs
    `scontrol show config` at every Snakemake start, which waits 9 s for a controller that
    is down: so any session that starts Snakemake keeps the cluster up."""
    import slurm_cluster
    items = request.session.items
    if not cluster_allowed():
        yield (f"the SLURM tier installs SLURM and munge with apt (as root) and starts their "
               f"daemons on this machine: set {CLUSTER_OPT_IN}=1 to allow it (CI does, "
               f"CI=true)")
        return
    why = slurm_cluster.install() if any(item.get_closest_marker("slurm")
                                         for item in items) else None
    starts_snakemake = any(item.get_closest_marker(tier) for item in items
                           for tier in ("workflow", "slow", "slurm"))
    if not slurm_cluster.have_slurm() or os.geteuid() != 0:
        yield why or "SLURM is not installed, or this is not root"
        return
    if not starts_snakemake:
        yield "no test here starts Snakemake"
        return
    slurm_cluster.start()
    try:
        yield None
    finally:
        slurm_cluster.stop()


class HeadStart:
    """A long workflow run that starts with the session, in a background thread, so that the
    tests of the other tiers run while it computes: `fn(tmp_path_factory)` gives the value of
    the fixture `fixture`, which waits for it. Started only when a selected test uses that
    fixture; its Snakemake processes run in the background (`snakemake(..., background=True)`,
    niced unless the foreground needs the result soon)."""

    def __init__(self, fixture: str, fn, needs_cluster: bool):
        self.fixture, self.fn, self.needs_cluster = fixture, fn, needs_cluster
        self.future, self.tmp_path_factory = None, None

    def result(self):
        """The run's value; a head start not started (DEJAVU_TESTS_SERIAL=1) runs now."""
        if self.future is None:
            self.future = Future()
            self.future.set_result(self.fn(self.tmp_path_factory))
        return self.future.result()


HEAD_STARTS: dict[str, HeadStart] = {}


def head_start(fixture: str, needs_cluster: bool = False):
    """Register the decorated function as the head start whose value `fixture` returns."""
    def register(fn):
        HEAD_STARTS[fixture] = HeadStart(fixture, fn, needs_cluster)
        return fn
    return register


def requested(item) -> set[str]:
    """The fixtures a test uses; not its parametrize arguments, which pytest lists among its
    fixture names too (a unit test's `sweep` argument once started the sweep's head start
    in every worker of the unit tier, doubling its time)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return set(item.fixturenames) - set(params)


@pytest.fixture(scope="session", autouse=True)
def head_starts(request, test_cluster, tmp_path_factory):
    """Start the head starts the selected tests need; at the session's end, kill what is
    left of them (a session stopped early does not wait for a sweep)."""
    used = {name for item in request.session.items for name in requested(item)}
    for head in HEAD_STARTS.values():
        head.tmp_path_factory = tmp_path_factory
    started = [head for name, head in HEAD_STARTS.items() if name in used
               and not (head.needs_cluster and test_cluster is not None)]
    if os.environ.get("DEJAVU_TESTS_SERIAL") == "1":  # each run when first needed, as a plain
        started = []                                  # fixture (to compare suite times)
    tmp_path_factory.getbasetemp()  # made once here, not raced for by the threads
    pool = ThreadPoolExecutor(max_workers=max(1, len(started)))
    for head in started:
        head.future = pool.submit(head.fn, tmp_path_factory)
    try:
        yield
    finally:
        for proc in list(BACKGROUND):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def tiny_run():
    return HEAD_STARTS["tiny_run"].result()


@head_start("tiny_run")
def run_tiny(tmp_path_factory):
    """The tiny config run once, end to end, in a temporary copy of the workflow; started
    with the session (the unit tests run meanwhile), not niced: the workflow tests that
    read it come next."""
    work = copy_workflow(tmp_path_factory.mktemp("tiny") / "dejavu")
    proc = snakemake(work, "-c2", "--configfile", "tiny.yaml", background=True, nice=False)
    return work, proc


@pytest.fixture(scope="session")
def chromium():
    """The Chromium binary of the report's browser test, or pytest.skip saying why not."""
    found = HEAD_STARTS["chromium"].result()
    if isinstance(found, Path):
        return found
    pytest.skip(found)


CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


@head_start("chromium")
def find_chromium(tmp_path_factory) -> Path | str:
    """Chromium's path; where it is missing and the suite may install packages (as the
    SLURM tier does: CI, `cluster_allowed`), Debian's chromium package is installed first,
    in the background while the unit tests run. Else why there is none."""
    import apt_packages
    found = next(filter(None, map(shutil.which, CHROMIUM)), None)
    if found is None and cluster_allowed():
        why = apt_packages.install(["chromium"], "Chromium")
        found = shutil.which("chromium")
        if found is None:
            return why or "apt-get installed chromium, but its command is missing"
    if found is None:
        return (f"no Chromium ({', '.join(CHROMIUM)}) on PATH: install Debian's chromium, "
                f"or set {CLUSTER_OPT_IN}=1 to let the suite install it (CI does, CI=true)")
    return Path(found)


# What a test costs, one marker each (README, "Tests"): `python -m pytest -m unit` is the
# inner loop; plain `python -m pytest` runs every tier.
TIERS = {  # in the order they run
    "unit": "no Snakemake start and no workflow run (seconds)",
    "workflow": "runs or dry-runs the DAG with Snakemake (a tiny run: a minute or two)",
    "slurm": "the workflow on a real single-node SLURM cluster (minutes)",
    "slow": "the known-answer run of the demo (about ten minutes, from the session's start), "
            "and checks at real model sizes that run beside it",
}
WORKFLOW_FIXTURES = {"tiny_run"}
# Seconds a test of each tier may take, fixtures included (pytest-timeout), so a hung job
# or cluster fails that test, not the whole run at CI's limit. A workflow or SLURM test may
# wait for its head start; a slow test for the known-answer run, which started with the
# session (about 25 minutes on a slow day). A test's own timeout marker takes precedence.
TIMEOUTS = {"unit": 300, "workflow": 1200, "slurm": 1200, "slow": 2700}


def pytest_xdist_auto_num_workers(config) -> int:
    """Worker processes for pyproject's `-n auto`. The unit tier alone (`-m unit`) runs in
    one per core, up to four, a test file to a worker (`--dist loadfile`: a file's session
    fixtures, such as the memory-format canary's, are computed once): its tests are short
    and one process kept two cores only 64 % busy. Any other selection runs in this process,
    as before: the long workflow runs start once, with the session (`HeadStart`), and the
    tiers' other tests run beside them."""
    if config.option.markexpr != "unit":
        return 0
    return min(4, len(os.sched_getaffinity(0)))


def pytest_configure(config):
    for name, what in TIERS.items():
        config.addinivalue_line("markers", f"{name}: {what}")
    LOAD.start()


LOAD = machine_load.MachineLoad()


def pytest_terminal_summary(terminalreporter):
    line = LOAD.summary()
    if line:
        terminalreporter.write_line(line)


def tier_problems(items) -> list[str]:
    """Tests without exactly one tier marker, and unit tests that use a workflow run."""
    problems = []
    for item in items:
        tiers = {m.name for m in item.iter_markers()} & set(TIERS)
        if len(tiers) != 1:
            problems.append(f"{item.nodeid}: tier markers {sorted(tiers) or 'none'}, "
                            f"needs exactly one of {sorted(TIERS)}")
        elif tiers == {"unit"} and WORKFLOW_FIXTURES & set(item.fixturenames):
            problems.append(f"{item.nodeid}: marked unit but uses a workflow run")
    return problems


def pytest_collection_modifyitems(config, items):
    """Refuse a test without its tier marker; give each its tier's timeout; run the tiers in
    the order unit, workflow, SLURM, slow: the tests that wait for a head start (the SLURM fault runs, the sweep) come
    after everything that can run while those compute."""
    problems = tier_problems(items)
    if problems:
        raise pytest.UsageError("every test needs one tier marker:\n  " +
                                "\n  ".join(problems))
    for item in items:
        if item.get_closest_marker("timeout") is None:
            tier = next(m.name for m in item.iter_markers() if m.name in TIERS)
            item.add_marker(pytest.mark.timeout(TIMEOUTS[tier]))
    order = list(TIERS)
    items.sort(key=lambda item: min(order.index(m.name) for m in item.iter_markers()
                                    if m.name in TIERS))
