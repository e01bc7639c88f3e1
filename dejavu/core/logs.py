"""A job's process: its log (every stage logs through `logging`; a workflow script points it
at its log) and its end (`finish`). Every workflow script runs its stage inside `job`, which
does both and turns a stop at the time limit into the exit status Snakemake retries."""

import atexit
import contextlib
import logging
import os
import sys
import threading
from typing import Iterator, NoReturn

from .deadline import OUT_OF_TIME_EXIT, OutOfTime

# Set to 1 to end jobs the usual way, with the interpreter's whole teardown (to debug what
# a destructor or a module's clean-up does): `finish` then only calls sys.exit.
CLEAN_EXIT = "DEJAVU_CLEAN_EXIT"


@contextlib.contextmanager
def job(snakemake) -> Iterator[dict]:
    """A workflow script's stage, run as `with job(snakemake) as params: stage.run(...,
    **params)`: logs go to the job's log, the rule's params come as a dict, and the job
    ends with `finish` -- with OUT_OF_TIME_EXIT when the stage stopped at its time limit
    (OutOfTime), a failed attempt that Snakemake resubmits (the rule's retries) and that
    continues where this one stopped. Any other exception ends the job as usual, its
    traceback in the log."""
    to_file(snakemake.log[0])
    try:
        yield dict(snakemake.params.items())
    except OutOfTime as stopped:
        logging.getLogger("dejavu").info("%s; the next attempt continues", stopped)
        finish(OUT_OF_TIME_EXIT)
    finish()


def to_file(path: str) -> None:
    """Log to `path`, including the traceback of an exception that ends the job."""
    logging.basicConfig(filename=path, level=logging.INFO, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.captureWarnings(True)

    def log_then_raise(kind, value, tb):
        logging.getLogger("dejavu").error("job failed", exc_info=(kind, value, tb))
        sys.__excepthook__(kind, value, tb)

    sys.excepthook = log_then_raise


def finish(code: int = 0) -> NoReturn:
    """End the job's process with exit status `code`, as Python ends it less the teardown
    of the interpreter.

    What Python runs at exit still runs: the `atexit` handlers (logging's, which flushes
    and closes the job log, among them), then the standard streams are flushed. What is
    skipped is the clean-up of every module and object left, which no output needs (each is
    written and closed by the stage before it returns) and which costs a job that imported
    torch about 0.8 CPU-s, a quarter of a short job's whole work (`python
    bench/job_exit.py`). While a thread that Python would wait for still runs, or with
    DEJAVU_CLEAN_EXIT=1 in the environment (to debug a clean-up), the job ends the usual
    way."""
    waited_for = [t for t in threading.enumerate()
                  if not t.daemon and t is not threading.main_thread()]
    if waited_for or os.environ.get(CLEAN_EXIT) == "1":
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed or replaced streams
            pass
    os._exit(code)
