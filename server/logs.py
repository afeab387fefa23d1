"""Log set-up: text or one JSON object per line.

What the server logs at INFO and above never carries request content (patient
names, IDs, query values); only counts, sizes, methods and hashes.
"""

from __future__ import annotations

import json
import logging
import sys


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


# Libraries that log request content at INFO: httpx every request's full URL (a
# QIDO-RS URL carries the query's values: patient names, ids, dates), pynetdicom
# every C-FIND identifier it sends and receives. Their warnings still show.
QUIETED = ("httpx", "pynetdicom")


def configure(fmt: str, level: str) -> None:
    """Send the root logger's records to stderr in the given format; quiet ``QUIETED``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level != "DEBUG":  # at DEBUG, request content may be logged: it is asked for
        for name in QUIETED:
            logging.getLogger(name).setLevel(logging.WARNING)
