"""Job logs: every stage logs through `logging`; a workflow script points it at its log."""

import logging
import sys


def to_file(path: str) -> None:
    """Log to `path`, including the traceback of an exception that ends the job."""
    logging.basicConfig(filename=path, level=logging.INFO, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.captureWarnings(True)

    def log_then_raise(kind, value, tb):
        logging.getLogger("dejavu").error("job failed", exc_info=(kind, value, tb))
        sys.__excepthook__(kind, value, tb)

    sys.excepthook = log_then_raise
