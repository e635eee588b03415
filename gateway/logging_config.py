"""Logging for `opengate serve`: uvicorn's own lines plus the gateway's (`opengate.*`,
including the access log, which names query parameters but never their values).

A failure that repeats (the database down, a client that stopped reading) is written once
per kind and interval by `RepeatFilter`, with the count of what it held back: an outage
under load is a few lines, not a traceback per request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

REPEAT_SECONDS = 60.0


class RepeatFilter(logging.Filter):
    """Lets a warning or error through once per `interval` for each kind: the record's
    `repeat_key` (`extra={"repeat_key": ...}`, shared by every logger that reports the same
    failure) or else its logger and message template. The first one let through after a
    quiet spell says how many were held back."""

    def __init__(self, name: str = "", interval: float = REPEAT_SECONDS) -> None:
        super().__init__(name)
        self.interval = interval
        self._seen: dict[tuple[Any, ...], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True  # the access log and other information lines are never held
        repeat_key = getattr(record, "repeat_key", None)
        key = ("", repeat_key) if repeat_key else (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            last, held = self._seen.get(key, (-self.interval, 0))
            if now - last < self.interval:
                self._seen[key] = (last, held + 1)
                return False
            if len(self._seen) > 1000:  # distinct kinds are few; never grow without bound
                self._seen.clear()
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.interval:.0f} s)"
        return True


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "filters": {
        "repeats": {"()": RepeatFilter, "interval": REPEAT_SECONDS},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["repeats"],
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "opengate": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # Authlib logs issued tokens at DEBUG: never below INFO.
        "authlib": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # The pool reports dead connections with a traceback each: through the same filter.
        "sqlalchemy": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
