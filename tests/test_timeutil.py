"""The one time parser: every form clients send, and strict RFC 3339 out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sfa.errors import BadArgs
from sfa.timeutil import format_rfc3339, parse_time

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("given", "expected"), [
    ("2030-02-01T00:00:00Z", datetime(2030, 2, 1, tzinfo=UTC)),
    ("2030-02-01T02:00:00+02:00", datetime(2030, 2, 1, tzinfo=UTC)),
    ("2030-02-01", datetime(2030, 2, 1, tzinfo=UTC)),  # sfi users type a date alone
    ("2030-02-01T15:18", datetime(2030, 2, 1, 15, 18, tzinfo=UTC)),
    ("20300201T15:18:30", datetime(2030, 2, 1, 15, 18, 30, tzinfo=UTC)),  # XML-RPC dateTime
    ("1896134400", datetime(2030, 2, 1, tzinfo=UTC)),  # omni's Register: epoch in a string
    (1896134400, datetime(2030, 2, 1, tzinfo=UTC)),  # omni's Update: epoch as an int
    (1896134400.5, datetime(2030, 2, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ("+2d", NOW + timedelta(days=2)),
    ("+3w", NOW + timedelta(weeks=3)),
    ("+1m", NOW + timedelta(weeks=4)),  # SFA sfi's month: four weeks
    ("+5h", NOW + timedelta(hours=5)),
    ("+30min", NOW + timedelta(minutes=30)),
    (datetime(2030, 2, 1), datetime(2030, 2, 1, tzinfo=UTC)),
])
def test_every_form_a_client_sends(given: object, expected: datetime) -> None:
    assert parse_time(given, NOW) == expected


@pytest.mark.parametrize("bad", [
    "", "tomorrow", "+2y", "+-1d", "+d", "2030-13-01", "2030-02-30T00:00:00Z", "99999999999999",
    True, None, [], "1e9", "2030-02-01T00:00:00Zjunk",
])
def test_anything_else_is_badargs(bad: object) -> None:
    with pytest.raises(BadArgs):
        parse_time(bad, NOW)


def test_written_strictly() -> None:
    assert format_rfc3339(parse_time("1896134400")) == "2030-02-01T00:00:00Z"
