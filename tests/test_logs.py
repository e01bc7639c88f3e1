"""A job's end (`dejavu.core.logs.finish`): what Python does at exit is done (the log is
whole, atexit handlers ran, the streams are flushed, the exit status is the one asked for),
a thread still writing is waited for, DEJAVU_CLEAN_EXIT=1 asks for the interpreter's whole
teardown; and the wrapper every workflow script runs its stage in (`logs.job`)."""

import ast
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

pytestmark = pytest.mark.unit


def run_job(tmp_path, body: str, log: bool = True, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import atexit, logging, threading, time
        from pathlib import Path
        from types import SimpleNamespace
        from dejavu.core import logs
        out = Path({str(tmp_path)!r})
        # what Snakemake gives a script
        snakemake = SimpleNamespace(log=[str(out / "job.log")], params={{"size": 3}})
    """) + ('logs.to_file(str(out / "job.log"))\n' if log else "") + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_finish_ends_with_the_log_whole_and_the_exit_handlers_run(tmp_path):
    proc = run_job(tmp_path, """
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        for i in range(2000):
            logging.getLogger("dejavu").info("line %d", i)
        print("unflushed output", end="")  # a pipe: block-buffered until flushed
        logs.finish(3)
        raise AssertionError("finish returned")
    """)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "unflushed output"
    lines = (tmp_path / "job.log").read_text().splitlines()
    assert len(lines) == 2000 and lines[-1].endswith("line 1999")
    assert (tmp_path / "atexit").read_text() == "ran"


def test_finish_waits_for_a_thread_that_is_still_writing(tmp_path):
    proc = run_job(tmp_path, """
        def write():
            time.sleep(1)
            (out / "late").write_text("written")
        threading.Thread(target=write).start()
        logs.finish()
    """)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "late").read_text() == "written"


@pytest.mark.parametrize("clean", ["0", "1"])
def test_a_clean_exit_on_request_runs_the_interpreters_teardown(tmp_path, clean):
    """An object left in a module is finalised only by the interpreter's teardown: skipped
    by `finish`, run with DEJAVU_CLEAN_EXIT=1."""
    proc = run_job(tmp_path, """
        class Left:
            def __del__(self):
                (out / "finalised").write_text("yes")
        left = Left()
        logs.finish(0)
    """, env={"DEJAVU_CLEAN_EXIT": clean})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "finalised").exists() == (clean == "1")


def test_a_job_logs_and_gives_the_params_and_ends_with_finish(tmp_path):
    proc = run_job(tmp_path, """
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        with logs.job(snakemake) as params:
            logging.getLogger("dejavu").info("stage ran with %s", params)
        raise AssertionError("the job went on after its stage")
    """, log=False)
    assert proc.returncode == 0, proc.stderr
    assert "stage ran with {'size': 3}" in (tmp_path / "job.log").read_text()
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_job_stopped_at_its_time_limit_exits_with_the_status_snakemake_retries(tmp_path):
    from dejavu.core.deadline import OUT_OF_TIME_EXIT
    proc = run_job(tmp_path, """
        from dejavu.core.deadline import OutOfTime
        with logs.job(snakemake):
            raise OutOfTime("stopped after epoch 2 of 9 (time limit)")
    """, log=False)
    assert proc.returncode == OUT_OF_TIME_EXIT == 75, proc.stderr
    assert ("stopped after epoch 2 of 9 (time limit); the next attempt continues"
            in (tmp_path / "job.log").read_text())


def test_a_job_whose_stage_fails_exits_with_the_traceback_in_its_log(tmp_path):
    proc = run_job(tmp_path, """
        with logs.job(snakemake):
            raise ValueError("no crops of set A")
    """, log=False)
    assert proc.returncode == 1
    log = (tmp_path / "job.log").read_text()
    assert "job failed" in log and "ValueError: no crops of set A" in log


def stage_block(statements: list[ast.stmt]) -> ast.stmt:
    """The last statement of a script, inside a trailing `if __name__ == "__main__":`."""
    last = statements[-1]
    if isinstance(last, ast.If):
        return stage_block(last.body)
    return last


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "workflow/scripts")
                                          .glob("*.py")))
def test_every_workflow_script_runs_its_stage_in_a_job(script):
    """The stage runs inside `with job(snakemake)`, the script's last statement (so its
    end is `finish`), and nothing before it logs or ends the process by hand."""
    source = (REPO / "workflow/scripts" / script).read_text()
    last = stage_block(ast.parse(source).body)
    assert isinstance(last, ast.With), ast.unparse(last)
    assert ast.unparse(last.items[0].context_expr) == "job(snakemake)"
    assert "finish(" not in source and "to_file(" not in source
