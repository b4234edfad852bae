"""Sizes, times and bandwidths as scenario files write them (smpmem/scenario/_units.py)."""

import pytest
from hypothesis import given, strategies as st

from smpmem.scenario._units import fmt_size, fmt_time, parse_size, parse_time


class TestSizes:
    @pytest.mark.parametrize(
        "text, expected",
        [
            (4096, 4096),
            (0, 0),
            ("4096", 4096),
            ("4KiB", 4096),
            ("4k", 4096),
            ("4K", 4096),
            ("16 MiB", 16 << 20),
            ("2M", 2 << 20),
            ("1G", 1 << 30),
            ("1GiB", 1 << 30),
            ("1gib", 1 << 30),
            ("1T", 1 << 40),
            ("1.5GiB", 3 << 29),
            ("512B", 512),
            ("1_024", 1024),
        ],
    )
    def test_accepted(self, text, expected):
        """Integers are bytes and every binary suffix spelling is a power of 1024."""
        assert parse_size(text) == expected

    @pytest.mark.parametrize(
        "text, reason",
        [
            ("512MB", "ambiguous"),
            ("1GB", "ambiguous"),
            ("-4KiB", "must not be negative"),
            (-1, "must not be negative"),
            ("0.3k", "not a whole number of bytes"),
            ("4 parsecs", "unknown size unit 'parsecs'"),
            ("lots", "expected a size"),
            (1.5, "got the float 1.5"),
            (True, "got the boolean true"),
            ([1], "got a list"),
        ],
    )
    def test_refused(self, text, reason):
        """A bad size raises ValueError saying what was given and what is allowed."""
        with pytest.raises(ValueError) as info:
            parse_size(text)
        assert reason in str(info.value)

    def test_signed(self):
        """A signed size (a brk delta) may be negative."""
        assert parse_size("-64KiB", signed=True) == -(64 << 10)

    @given(st.integers(min_value=0, max_value=1 << 50))
    def test_fmt_round_trip(self, n):
        """fmt_size writes every size in a form parse_size reads back exactly."""
        assert parse_size(fmt_size(n).replace(" bytes", "")) == n


class TestTimes:
    @pytest.mark.parametrize(
        "text, expected",
        [
            (200, 200),
            ("200ns", 200),
            ("5us", 5_000),
            ("5µs", 5_000),
            ("10ms", 10_000_000),
            ("1.5s", 1_500_000_000),
            ("0.5us", 500),
            ("2 s", 2_000_000_000),
        ],
    )
    def test_accepted(self, text, expected):
        """Integers are nanoseconds; strings carry ns, us, ms or s."""
        assert parse_time(text) == expected

    @pytest.mark.parametrize(
        "text, reason",
        [
            ("10", "has no unit"),
            ("10 min", "unknown time unit 'min'"),
            ("1.5ns", "not a whole number of nanoseconds"),
            ("-1ms", "must not be negative"),
            (1.5, 'write a string such as "1.5s"'),
            (False, "got the boolean false"),
        ],
    )
    def test_refused(self, text, reason):
        """A bad time raises ValueError saying what was given and what is allowed."""
        with pytest.raises(ValueError) as info:
            parse_time(text)
        assert reason in str(info.value)

    @given(st.integers(min_value=0, max_value=10**15))
    def test_fmt_round_trip(self, n):
        """fmt_time writes every time in a form parse_time reads back exactly."""
        text = fmt_time(n)
        assert parse_time(text if text != "0" else 0) == n
