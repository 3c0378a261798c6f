"""The one clock (statelang.runtime.clock): RealClock follows the wall clock, VirtualClock moves only
when told to and never backwards, with AWS's millisecond precision."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statelang.runtime.clock import Clock, RealClock, VirtualClock, make_clock, utcnow

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_real_clock_is_aware_utc_and_tracks_the_wall_clock():
    c = RealClock()
    assert not c.virtual
    a = c.now()
    assert a.tzinfo is not None and a.utcoffset() == timedelta(0)
    assert abs((a - utcnow()).total_seconds()) < 5
    assert abs(a.timestamp() - time.time()) < 5


def test_real_clock_sleeps_until_due_and_returns_at_once_for_the_past():
    c = RealClock()
    started = time.monotonic()
    c.sleep_until(c.now() - timedelta(seconds=100))
    assert time.monotonic() - started < 0.05
    started = time.monotonic()
    c.sleep_until(c.now() + timedelta(seconds=0.15))
    assert time.monotonic() - started >= 0.1


def test_real_clock_sleep_is_cut_short_by_the_wake_event():
    c = RealClock()
    wake = threading.Event()
    threading.Timer(0.05, wake.set).start()
    started = time.monotonic()
    c.sleep_until(c.now() + timedelta(seconds=10), wake)
    assert time.monotonic() - started < 5


def test_virtual_clock_truncates_to_milliseconds():
    # AWS timestamps carry milliseconds.
    c = VirtualClock(T0)
    assert c.virtual
    assert c.now() == T0.replace(microsecond=123000)


def test_virtual_clock_stands_still_until_advanced():
    c = VirtualClock(T0)
    a = c.now()
    time.sleep(0.01)
    assert c.now() == a
    assert c.advance(7 * 86400) == a + timedelta(days=7)
    assert c.now() == a + timedelta(days=7)


def test_virtual_clock_set_never_goes_backwards():
    c = VirtualClock(T0)
    start = c.now()
    c.set(start - timedelta(hours=1))
    assert c.now() == start
    c.set(start + timedelta(minutes=5))
    assert c.now() == start + timedelta(minutes=5)


def test_virtual_sleep_until_jumps_without_sleeping():
    c = VirtualClock(T0)
    due = c.now() + timedelta(days=365)
    started = time.monotonic()
    c.sleep_until(due)
    assert time.monotonic() - started < 0.5
    assert c.now() == due


def test_virtual_clock_defaults_to_now():
    assert abs((VirtualClock().now() - datetime.now(UTC)).total_seconds()) < 5


@given(st.lists(st.one_of(st.floats(min_value=0, max_value=1e6, allow_nan=False),
                          st.integers(min_value=-10**6, max_value=10**6).map(lambda s: ("set", s))),
                max_size=30))
def test_virtual_clock_is_monotonic(ops):
    c = VirtualClock(T0)
    last = c.now()
    for op in ops:
        if isinstance(op, tuple):
            c.set(last + timedelta(seconds=op[1]))
        else:
            c.advance(op)
        assert c.now() >= last
        last = c.now()


def test_advance_is_thread_safe():
    c = VirtualClock(T0)
    start = c.now()
    threads = [threading.Thread(target=lambda: [c.advance(1) for _ in range(500)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.now() == start + timedelta(seconds=4000)


def test_make_clock():
    v = VirtualClock(T0)
    assert make_clock(v) is v
    assert isinstance(make_clock(None), RealClock)
    assert isinstance(make_clock("real"), RealClock)
    assert isinstance(make_clock("wall"), RealClock)
    assert isinstance(make_clock("virtual"), VirtualClock)
    assert isinstance(make_clock("virtual"), Clock)
    with pytest.raises(ValueError, match="clock must be"):
        make_clock("sundial")
