"""The package metadata tells the truth: every third-party import is declared, the conda
environment lists what pyproject lists, the reference versions satisfy the declared
ranges, and the licence file matches the licence field."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as metadata
import re
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO

pytestmark = pytest.mark.unit

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
CORE = [Requirement(r) for r in PROJECT["dependencies"]]
EXTRAS = {extra: [Requirement(r) for r in rs if not r.startswith(PROJECT["name"])]
          for extra, rs in PROJECT["optional-dependencies"].items()}
# what CI installs (.[test]): every requirement but the gpu extra's faiss-gpu, which needs
# CUDA 12 and a GPU (docs/cluster.md, "Installing")
TESTED = CORE + sum((rs for extra, rs in EXTRAS.items() if extra != "gpu"), [])
CONDA_NAMES = {"torch": "pytorch", "open_clip_torch": "open-clip-torch"}  # conda-forge's names where they differ from PyPI's


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def reference_versions() -> dict[str, str]:
    """constraints.txt: the version of each distribution the tests run with."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> {'top' if some file imports it at module level, 'lazy' if
    inside a function}, over every module of the package."""
    found: dict[str, set[str]] = {}
    for path in (REPO / "dejavu").rglob("*.py"):
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root in sys.stdlib_module_names or root in ("dejavu", "__future__"):
                    continue
                found.setdefault(root, set()).add("top" if id(node) in top_level else "lazy")
    return found


@functools.cache
def providers() -> dict[str, list[str]]:
    """Top-level module -> the installed distributions that provide it (a scan of every
    installed distribution: a quarter second, done once)."""
    return metadata.packages_distributions()


def distribution_of(module: str) -> str:
    dists = providers().get(module)
    assert dists, f"dejavu imports {module!r}, which no installed distribution provides"
    return canonical(dists[0])


def test_every_third_party_import_is_declared():
    core = {canonical(r.name) for r in CORE}
    optional = {canonical(r.name) for rs in EXTRAS.values() for r in rs}
    imports = third_party_imports()
    assert {"torch", "numpy", "zarr", "faiss", "PIL", "safetensors", "timm"} <= set(imports)
    for module, where in sorted(imports.items()):
        dist = distribution_of(module)
        assert dist in core | optional, f"{module} ({dist}) is imported but not declared"
        if dist not in core:  # an extra: a user without it must still import dejavu
            assert where == {"lazy"}, f"{module} is an extra but imported at module level"


def test_lightly_is_not_needed():
    assert "lightly" not in third_party_imports()
    assert all(canonical(r.name) != "lightly" for r in CORE)


def test_conda_environment_lists_what_pyproject_lists():
    env = yaml.safe_load((REPO / "envs" / "dejavu.yaml").read_text())
    assert env["channels"] == ["conda-forge", "bioconda"]  # snakemake is on bioconda
    listed = [d for d in env["dependencies"] if isinstance(d, str)]
    assert all(isinstance(d, str) for d in env["dependencies"]), "no pip section"
    conda = {}
    for entry in listed:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)(.*)", entry).groups()
        conda[name] = spec
    expected = {CONDA_NAMES.get(r.name, r.name): str(r.specifier)
                for r in CORE + EXTRAS["cpu"] + EXTRAS["timm"] + EXTRAS["openclip"]}
    expected["python"] = ">=3.11"
    assert {n: ",".join(sorted(s.split(","))) for n, s in conda.items()} == \
        {n: ",".join(sorted(s.split(","))) for n, s in expected.items()}


def test_reference_versions_satisfy_the_declared_ranges():
    pins = reference_versions()
    for requirement in TESTED:
        name = canonical(requirement.name)
        assert name in pins, f"{name} has no reference version in constraints.txt"
        assert Version(pins[name]) in requirement.specifier, (name, pins[name])
    assert "lightly" not in pins


CUDA_LIBRARIES = re.compile(r"^(nvidia-|cuda-|triton$)")


def test_a_cpu_only_install_pulls_no_cuda_library():
    """docs/install.md's CPU-only route installs torch's CPU build first, then dejavu with
    the cpu extra: nothing but torch may pull a CUDA library. Walks the installed
    requirements of dejavu[cpu] (torch and torchvision, which the route takes from PyTorch's
    CPU index, not followed); and the route's torch versions are the pinned ones, which the
    CPU build's local version label satisfies."""
    from packaging.specifiers import SpecifierSet
    seen, todo, pulled = set(), list(CORE + EXTRAS["cpu"]), []
    while todo:
        requirement = todo.pop()
        name = canonical(requirement.name)
        if name in seen or name in ("torch", "torchvision"):
            continue
        seen.add(name)
        if CUDA_LIBRARIES.match(name):
            pulled.append(name)
            continue
        for text in metadata.requires(name) or []:
            child = Requirement(text)
            if child.marker is None or child.marker.evaluate({"extra": ""}):
                todo.append(child)
    assert not pulled, f"besides torch, {pulled} would pull CUDA libraries"
    assert "faiss-cpu" in seen and "zarr" in seen  # the walk went through the tree
    page = (REPO / "docs" / "install.md").read_text()
    pins = reference_versions()
    route = (f"pip install torch=={pins['torch']} torchvision=={pins['torchvision']} "
             f"--index-url https://download.pytorch.org/whl/cpu")
    assert route in page
    assert 'pip install -c constraints.txt -e ".[cpu]"' in page
    assert f"{pins['torch']}+cpu" in SpecifierSet(f"=={pins['torch']}")


def test_licence_file_matches_the_licence_field():
    assert PROJECT["license"] == "MIT"  # PEP 639: an SPDX expression
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_every_lower_bound_is_a_tested_version():
    """No version older than the tested one is allowed: each requirement's lower bound is
    what constraints.txt pins (README's and CI's installs)."""
    pins = reference_versions()
    for requirement in TESTED:
        lows = [s.version for s in requirement.specifier if s.operator == ">="]
        assert lows == [pins[canonical(requirement.name)]], (str(requirement), lows)


def test_the_version_is_written_once_and_the_distribution_name_is_dejavus_own():
    """pyproject reads the version from dejavu/__init__.py; the installed distribution
    (not PyPI's unrelated `dejavu`) reports it."""
    import dejavu
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dejavu.__version__"}
    assert PROJECT["name"] == "dejavu-memorization"
    assert metadata.version(PROJECT["name"]) == dejavu.__version__
    assert metadata.distribution(PROJECT["name"]).entry_points.select(
        group="console_scripts", name="dejavu")


def test_stages_that_need_no_torch_do_not_import_it():
    """torch takes seconds to import, longer than these jobs (and the Snakefile parse) run."""
    import subprocess
    torch_free = ["config", "cluster", "core.epochs", "core.store", "core.logs",
                  "core.deadline", "core.provenance", "data.sources",
                  "data.ingest", "data.split", "data.synth", "data.crops", "training.methods",
                  "training.augment_settings", "attack.embeddings", "attack.index",
                  "attack.knn", "attack.score", "onemodel.onemodel",
                  "onemodel.sslmem_summary", "report.page", "report.summary"]
    # and what the report imports while it runs (its SSLMem table: seconds of every report)
    code = ("import sys\n" + "".join(f"import dejavu.{m}\n" for m in torch_free)
            + "import pandas as pd\nfrom dejavu.report import tables\n"
            + "tables.sslmem_table([], pd.DataFrame(), {})\n"
            + "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_the_architecture_page_names_every_module():
    """docs/architecture.md is where a newcomer looks a module up: each is named there (a
    package's modules in its layer's row, the top-level ones by path; `training/methods/`,
    one file per method, as a whole)."""
    page = (REPO / "docs" / "architecture.md").read_text()
    missing = []
    for path in sorted((REPO / "dejavu").rglob("*.py")):
        rel = path.relative_to(REPO / "dejavu")
        if rel.name == "__init__.py" or rel.parts[:2] == ("training", "methods"):
            continue
        name = f"`dejavu/{rel}`" if len(rel.parts) == 1 else f"`{rel.stem}`"
        if name not in page:
            missing.append(str(rel))
    assert not missing, f"docs/architecture.md does not name {missing}"


LAYERS = ["core", "data", "training", "attack", "onemodel", "rcdm", "report"]  # bottom up


def package_imports() -> dict[str, set[str]]:
    """dejavu module -> the dejavu modules it imports (at the top or inside a function)."""
    root = REPO / "dejavu"
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - max(node.level - 1, 0)]
                target = ".".join(base + ([node.module] if node.module else [])) \
                    if node.level else node.module or ""
                for alias in node.names:
                    child = f"{target}.{alias.name}"
                    found.add(child if child in modules else target)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def test_layers_import_only_downward_and_nothing_imports_in_a_circle():
    graph = package_imports()
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                    if layer(t) > layer(m))
    assert not upward, upward
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module, path):
        state[module] = 1
        for target in sorted(graph[module]):
            assert state.get(target) != 1, " -> ".join(path + [module, target])
            if target not in state:
                visit(target, path + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_no_module_or_function_grows_past_what_a_reader_takes_in():
    """The house rule (issue 18): modules of about 400 lines at most, functions of about 60."""
    long_modules, long_functions = [], []
    for path in (REPO / "dejavu").rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > 420:
            long_modules.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 65:
                    long_functions.append(f"{path.relative_to(REPO)}:{node.lineno} "
                                          f"{node.name}: {lines} lines")
    assert not long_modules and not long_functions, long_modules + long_functions


def test_every_test_of_the_session_has_a_timeout(request):
    """pytest-timeout is in the test extra so that a hung test fails in minutes: every
    collected test carries a timeout (its tier's, tests/conftest.py), no more than 45
    minutes."""
    from conftest import TIERS
    untimed = [item.nodeid for item in request.session.items
               if item.get_closest_marker("timeout") is None
               or not 0 < item.get_closest_marker("timeout").args[0] <= 2700]
    assert not untimed, untimed[:5]
    assert {m.name for item in request.session.items for m in item.iter_markers()} & set(TIERS)


def test_the_package_reads_no_private_attribute_of_torch():
    """torch's private names (`torch._foreach_*`, `torch._dynamo`, ...) move between
    releases without notice: the package uses public API only. (Snakemake's one private
    attribute, the SLURM run ID, is read in `dejavu.cluster.slurm_run_id`, which warns
    naming the version where it is missing: tests/test_cluster.py.)"""
    def dotted(node) -> str:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""

    private = []
    for path in sorted((REPO / "dejavu").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = dotted(node) if isinstance(node, ast.Attribute) else ""
            parts = name.split(".")
            if parts[0] == "torch" and any(p.startswith("_") and not p.startswith("__")
                                           for p in parts[1:]):
                private.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert not private, private


def test_the_quick_start_is_two_commands_and_ci_runs_the_second_verbatim():
    """README's quick start: one command installs and runs the demo (with FAISS: the cpu
    extra), one installs the test dependencies and runs the suite; `.ci/run` runs the
    second, character for character."""
    readme = (REPO / "README.md").read_text()
    quick = readme[readme.index("## Quick start"):readme.index("## What you get")]
    blocks = re.findall(r"```bash\n(.*?)\n```", quick, re.S)
    assert len(blocks) == 2 and not any("\n" in block for block in blocks), blocks
    assert blocks[0] == 'pip install -c constraints.txt -e ".[cpu]" && snakemake --cores 2'
    assert blocks[1] in (REPO / ".ci" / "run").read_text().splitlines()
    assert "cpu" in PROJECT["optional-dependencies"]["test"][0]  # the suite has FAISS too
