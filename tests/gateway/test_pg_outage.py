"""PostgreSQL stopped for 10 s under a bounded load (issue 12's bar): a real
`opengate serve --workers 2` on a private cluster (bench/private_postgres.py, never the
shared server), the catalog list, records and records with an app token called by four
clients; the cluster is stopped, started again, and nothing is restarted on the gateway.

No 500 at all, every 503 with `Retry-After`, every route answering 200 again after the
restart, and a handful of log lines rather than a traceback per request. The figures
themselves are printed by `python -m bench.pg_outage`.
"""

from __future__ import annotations

import pytest

from bench import pg_outage
from bench.private_postgres import pg_bin
from tests.conftest import REQUIRE_PG


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_stopped_10_s_gives_503_only_and_recovers() -> None:
    if pg_bin() is None:
        message = "PostgreSQL binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin"
        if REQUIRE_PG:
            pytest.fail(message)
        pytest.skip(message)
    figures = pg_outage.run(outage=10.0, clients=4, workers=2)
    summary = figures.summary()
    seen = {status for counts in figures.statuses.values() for status in counts}
    assert seen <= {200, 503}, summary
    assert figures.statuses["before"][200] > 0, summary
    assert figures.statuses["outage"][503] > 0, summary  # the outage was seen, and answered
    assert figures.without_retry_after == 0, summary
    assert not figures.transport_errors, summary  # every request got an answer
    assert figures.recovered_after is not None, summary  # without a restart
    assert figures.statuses["after"][200] > 0, summary
    assert len(figures.log_lines) <= 10, "\n".join(figures.log_lines)
    assert not any("Traceback" in line for line in figures.log_lines)
