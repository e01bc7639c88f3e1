"""Job logs: every stage logs through `logging`; a workflow script points it at its log."""

import logging


def to_file(path: str) -> None:
    logging.basicConfig(filename=path, level=logging.INFO, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.captureWarnings(True)
