"""Logging for `opengate serve`: uvicorn's own lines plus the gateway's (`opengate.*`,
including the access log, which names query parameters but never their values).

The access log's lines under `serve` go through `AccessLineHandler`: the request-context
middleware formats each line itself and the handler writes them a batch at a time (one
write every few milliseconds instead of a LogRecord, a formatting pass and a flushed write
a request — the access log was a few per cent of a worker's time on the hot path).

A failure that repeats (the database down, a client that stopped reading) is written once
per kind and interval by `RepeatFilter`, with the count of what it held back: an outage
under load is a few lines, not a traceback per request.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import logging
import threading
import time
from typing import Any

import orjson

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


class AccessLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes access-log lines in batches: `line()` takes a message the caller formatted,
    stamps it as the `plain` formatter would, and writes what gathered within
    `FLUSH_SECONDS` in one piece (at once when there is no running event loop, on exit,
    and before any ordinary record, so the order of lines is kept)."""

    FLUSH_SECONDS = 0.05
    MAX_LINES = 256

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""
        atexit.register(self.flush_lines)

    def line(self, message: str) -> None:
        if message.startswith("{"):  # a JSON line (OPENGATE_LOG_FORMAT=json) has its time
            entry = message + "\n"
        else:
            now = time.time()
            second = int(now)
            if second != self._second:  # strftime once a second, not once a line
                self._second = second
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            millis = int((now - second) * 1000)
            entry = f"{self._stamp},{millis:03d} INFO opengate.access {message}\n"
        lines = self._lines
        lines.append(entry)
        if len(lines) == 1:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush_lines)
            except RuntimeError:  # not in an event loop: nothing would flush it later
                self.flush_lines()
        elif len(lines) >= self.MAX_LINES:
            self.flush_lines()

    def flush_lines(self) -> None:
        lines, self._lines = self._lines, []
        if lines:
            with self.lock:  # type: ignore[union-attr]
                self.stream.write("".join(lines))
                self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        self.flush_lines()
        super().emit(record)


def access_line_handler() -> AccessLineHandler | None:
    """The batching handler when it is the access log's only way out (under `serve`);
    None otherwise (tests, another logging setup: the access log goes through logging)."""
    logger = logging.getLogger("opengate.access")
    handlers = logger.handlers
    if (
        len(handlers) == 1
        and isinstance(handlers[0], AccessLineHandler)
        and not logger.propagate
        and not logger.filters
        and not handlers[0].filters
    ):
        return handlers[0]
    return None


class JsonFormatter(logging.Formatter):
    """Every other log record as one JSON object, beside the JSON access lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def log_config(log_format: str = "plain") -> dict[str, Any]:
    """LOG_CONFIG, with every handler writing JSON when `log_format` is `json`."""
    if log_format != "json":
        return LOG_CONFIG
    config = copy.deepcopy(LOG_CONFIG)
    config["formatters"]["json"] = {"()": JsonFormatter}
    for handler in config["handlers"].values():
        handler["formatter"] = "json"
    return config


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
        "access": {
            "class": "gateway.logging_config.AccessLineHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "opengate": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "opengate.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        # Authlib logs issued tokens at DEBUG: never below INFO.
        "authlib": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # The pool reports dead connections with a traceback each: through the same filter.
        "sqlalchemy": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
