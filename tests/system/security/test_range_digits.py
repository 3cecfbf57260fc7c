"""Issue 31 §1.3: a Range number longer than Python's int-conversion limit (4,300 digits) is
a JSON 416, not a 500 with a traceback; the recording is served as before afterwards."""

from __future__ import annotations

import logging
import uuid

import aiohttp
import pytest

from core.tokens import Tokens
from recorder.ranges import MAX_DIGITS, ByteRange, RangeNotSatisfiable, parse_range
from tests.conftest import Node
from tests.system.recorder.conftest import record
from tests.system.security.test_http_hostile import json_error

DATA = b"0123456789" * 10
LONG = "9" * 5000


@pytest.mark.parametrize(
    "header",
    [f"bytes={LONG}-", f"bytes=0-{LONG}", f"bytes=-{LONG}"],
    ids=["first", "last", "suffix"],
)
async def test_a_range_number_of_5000_digits_is_a_json_416(
    node: Node, tokens: Tokens, header: str, caplog: pytest.LogCaptureFixture
) -> None:
    call_id = uuid.uuid4().hex
    await record(node.node.recording.service, call_id, DATA)
    auth = {"Authorization": f"Bearer {tokens.issue('investigator', 'I1')}"}
    url = f"/api/v1/recordings/{call_id}/media"
    with caplog.at_level(logging.ERROR):
        async with (
            aiohttp.ClientSession(base_url=node.url, headers=auth) as http,
            http.get(url, headers={"Range": header}) as response,
        ):
            assert response.status == 416, await response.text()
            assert response.content_type == "application/json"
            body = await response.json()
            assert json_error(body, "range_not_satisfiable")
            assert "9999" not in body["error"]["message"]  # nothing of the input echoed
            assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"
        async with (
            aiohttp.ClientSession(base_url=node.url, headers=auth) as http,
            http.get(url, headers={"Range": "bytes=10-19"}) as response,
        ):
            assert response.status == 206 and await response.read() == DATA[10:20]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_the_digit_bound() -> None:
    """Numbers up to the bound are numbers (leading zeros do not count), past it out of range."""
    size = 100
    assert parse_range("bytes=" + "0" * 5000 + "5-" + "0" * 5000 + "9", size) == ByteRange(
        5, 9, size
    )
    assert parse_range(f"bytes=0-{'9' * MAX_DIGITS}", size) == ByteRange(0, 99, size)
    for header in (f"bytes=0-{'9' * (MAX_DIGITS + 1)}", f"bytes=-{'1' * (MAX_DIGITS + 1)}"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    # Digits other than ASCII's are not a range (ignored: the whole file), never int()'d.
    assert parse_range("bytes=\u0661\u0662-", size) is None
