"""Logging for `opengate serve`: uvicorn's own lines plus the gateway's (`opengate.*`,
including the access log, which names query parameters but never their values)."""

from __future__ import annotations

from typing import Any

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "opengate": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # Authlib logs issued tokens at DEBUG: never below INFO.
        "authlib": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
