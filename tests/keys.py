"""The installation's keys as the gateway under test reads them (the key ring that the
`engine` fixture made, as `opengate migrate` does)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from gateway.keys import InstallationKeys, installation_keys
from gateway.settings import Settings


def keys_of(settings: Settings, engine: Engine) -> InstallationKeys:
    return installation_keys(settings, engine, create=False)
