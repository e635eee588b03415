"""The access log's batching handler under `serve` (gateway/logging_config.py)."""

from __future__ import annotations

import asyncio
import io
import logging
import re

from gateway.logging_config import LOG_CONFIG, AccessLineHandler, access_line_handler

PLAIN = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO opengate\.access (.*)$")


def test_lines_gather_in_the_loop_and_keep_their_order_with_ordinary_records():
    stream = io.StringIO()
    handler = AccessLineHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))

    async def serve() -> None:
        handler.line('127.0.0.1 "GET /a" 200 1.0ms rid=1')
        handler.line('127.0.0.1 "GET /b" 200 1.0ms rid=2')
        assert stream.getvalue() == ""  # gathered, not yet written
        await asyncio.sleep(handler.FLUSH_SECONDS * 3)
        assert stream.getvalue().count("\n") == 2
        handler.line('127.0.0.1 "GET /c" 200 1.0ms rid=3')
        handler.emit(logging.makeLogRecord({"name": "opengate.access", "msg": "ordinary"}))

    asyncio.run(serve())
    lines = stream.getvalue().splitlines()
    assert [PLAIN.match(line).group(1) for line in lines[:3]] == [  # type: ignore[union-attr]
        '127.0.0.1 "GET /a" 200 1.0ms rid=1',
        '127.0.0.1 "GET /b" 200 1.0ms rid=2',
        '127.0.0.1 "GET /c" 200 1.0ms rid=3',
    ]
    assert lines[3].endswith("opengate.access ordinary")


def test_outside_an_event_loop_a_line_is_written_at_once():
    stream = io.StringIO()
    AccessLineHandler(stream).line("x")
    assert PLAIN.match(stream.getvalue().rstrip("\n")).group(1) == "x"  # type: ignore[union-attr]


def test_only_the_serve_configuration_takes_the_shortcut():
    handlers = LOG_CONFIG["handlers"]
    assert handlers[LOG_CONFIG["loggers"]["opengate.access"]["handlers"][0]]["class"] == (
        "gateway.logging_config.AccessLineHandler"
    )
    logger = logging.getLogger("opengate.access")
    saved = (logger.handlers[:], logger.propagate)
    try:
        logger.handlers[:] = [AccessLineHandler(io.StringIO())]
        logger.propagate = False  # as LOG_CONFIG sets it up
        assert access_line_handler() is logger.handlers[0]
        logger.propagate = True  # another setup (pytest's caplog, say): through logging
        assert access_line_handler() is None
    finally:
        logger.handlers[:], logger.propagate = saved
