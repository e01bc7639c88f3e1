"""A job's process: its log (every stage logs through `logging`; a workflow script points it
at its log) and its end (every workflow script ends with `finish`)."""

import atexit
import logging
import os
import sys
import threading
from typing import NoReturn


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
    bench/job_exit.py`). While a thread that Python would wait for still runs, the job ends
    the usual way, after it."""
    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed or replaced streams
            pass
    os._exit(code)
