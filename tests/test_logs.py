"""A job's end (`dejavu.core.logs.finish`): what Python does at exit is done (the log is
whole, atexit handlers ran, the streams are flushed, the exit status is the one asked for),
a thread still writing is waited for, and every workflow script ends with it."""

import ast
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

pytestmark = pytest.mark.unit


def run_job(tmp_path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import atexit, logging, threading, time
        from pathlib import Path
        from dejavu.core import logs
        out = Path({str(tmp_path)!r})
        logs.to_file(str(out / "job.log"))
    """) + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)


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


def last_call(statements: list[ast.stmt]) -> str:
    """The source of the call the last statement of a block makes, following a trailing
    `if __name__ == "__main__":` block."""
    last = statements[-1]
    if isinstance(last, ast.If):
        return last_call(last.body)
    return ast.unparse(last)


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "workflow/scripts")
                                          .glob("*.py")))
def test_every_workflow_script_ends_with_finish(script):
    tree = ast.parse((REPO / "workflow/scripts" / script).read_text())
    assert last_call(tree.body) == "logs.finish()"
