"""Types of path and query parameters that name a database row by its integer id, bounded
by the column they are compared with. An id past the column's range made the driver fail
(SQLite: OverflowError beyond 2^63 - 1; PostgreSQL: `integer out of range` beyond
2^31 - 1) and the request a 500; now it is a 400 `invalid_parameter` like any bad value."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval

# An `INTEGER` id (applications, grants, consents…): 32 bits on PostgreSQL.
RowId = Annotated[int, Interval(ge=1, le=2**31 - 1)]
# A `BIGINT` one (audit event seq, checkpoint tree size).
BigRowId = Annotated[int, Interval(ge=1, le=2**63 - 1)]
