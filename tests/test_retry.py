"""Retry and Catch decisions (statelang.retry): pure functions of (retriers, counts, error).

Sources pinned in the comments:
- [EH] AWS Step Functions developer guide, "Handling errors in Step Functions workflows"
  https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
  (Retry fields: IntervalSeconds default 1, MaxAttempts default 3 and 0 = never retried,
  BackoffRate default 2.0, MaxDelaySeconds caps the backoff, JitterStrategy FULL draws a random
  delay between 0 and the computed backoff; States.ALL, States.TaskFailed, States.Runtime rules.)
- [CDK] aws_cdk.aws_stepfunctions.JitterType: "FULL: a random number between 0 and the computed
  backoff for the given retry attempt count"; RetryProps defaults interval 1 s, max_attempts 3,
  backoff_rate 2.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statelang.interpreter.retry import decide_retry, error_matches, find_catcher
from statelang.language import errors as E

# -- error matching -----------------------------------------------------------------------------

USER_ERRORS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._", min_size=1,
                      max_size=20).filter(lambda s: not s.startswith("States."))


def test_exact_name_matches_and_is_case_sensitive():
    # [EH] "Step Functions identifies errors ... using case-sensitive strings, known as error names."
    assert error_matches(["MyError"], "MyError")
    assert not error_matches(["myerror"], "MyError")
    assert not error_matches(["Other"], "MyError")
    assert not error_matches([], "MyError")


@pytest.mark.parametrize("error", ["MyError", "Lambda.ServiceException", E.TIMEOUT, E.HEARTBEAT_TIMEOUT,
                                   E.TASK_FAILED, E.BRANCH_FAILED, E.NO_CHOICE_MATCHED,
                                   E.INTRINSIC_FAILURE, E.PERMISSIONS, E.RESULT_PATH_MATCH_FAILURE,
                                   E.EXCEED_TOLERATED_FAILURE_THRESHOLD])
def test_states_all_matches_every_known_error(error):
    # [EH] States.ALL: "A wildcard that matches any known error name."
    assert error_matches([E.ALL], error)


def test_states_runtime_is_never_matched_not_even_by_name():
    # [EH] States.ALL cannot catch the Runtime error type; States.Runtime errors are not
    # retriable and always fail the execution.
    assert not error_matches([E.ALL], E.RUNTIME)
    assert not error_matches([E.RUNTIME], E.RUNTIME)
    assert not error_matches([E.TASK_FAILED], E.RUNTIME)
    assert decide_retry([{"ErrorEquals": [E.ALL]}], [0], E.RUNTIME) is None
    assert find_catcher([{"ErrorEquals": [E.ALL], "Next": "X"}], E.RUNTIME) is None


def test_task_failed_matches_everything_except_timeout():
    # [EH] States.TaskFailed: "When used in a retry or catch, States.TaskFailed acts as a wildcard
    # that matches any known error name except for States.Timeout."
    assert error_matches([E.TASK_FAILED], "MyError")
    assert error_matches([E.TASK_FAILED], E.HEARTBEAT_TIMEOUT)
    assert error_matches([E.TASK_FAILED], E.TASK_FAILED)
    assert not error_matches([E.TASK_FAILED], E.TIMEOUT)
    assert error_matches([E.TASK_FAILED, E.TIMEOUT], E.TIMEOUT)


@given(USER_ERRORS)
def test_user_errors_match_all_taskfailed_and_themselves(error):
    assert error_matches([E.ALL], error)
    assert error_matches([E.TASK_FAILED], error)
    assert error_matches([error], error)
    assert not error_matches([error + "X"], error)


# -- catchers ------------------------------------------------------------------------------------

def test_first_matching_catcher_wins():
    # [EH] "When a state reports an error ... the interpreter scans through the Catchers in the
    # order listed in the array" — the first whose ErrorEquals matches is taken.
    catchers = [{"ErrorEquals": ["A"], "Next": "OnA"}, {"ErrorEquals": ["B", "C"], "Next": "OnBC"},
                {"ErrorEquals": [E.ALL], "Next": "Any"}]
    assert find_catcher(catchers, "A")["Next"] == "OnA"
    assert find_catcher(catchers, "C")["Next"] == "OnBC"
    assert find_catcher(catchers, "Z")["Next"] == "Any"
    assert find_catcher(catchers[:2], "Z") is None
    assert find_catcher([], "A") is None


# -- retry decisions -----------------------------------------------------------------------------

def test_defaults_interval_1_backoff_2_max_attempts_3():
    # [EH]/[CDK] IntervalSeconds default 1, BackoffRate default 2.0, MaxAttempts default 3.
    r = [{"ErrorEquals": [E.ALL]}]
    assert decide_retry(r, [0], "X") == (0, 1.0)
    assert decide_retry(r, [1], "X") == (0, 2.0)
    assert decide_retry(r, [2], "X") == (0, 4.0)
    assert decide_retry(r, [3], "X") is None


def test_max_attempts_zero_never_retries():
    # [EH] "A value of 0 causes the error to never be retried."
    assert decide_retry([{"ErrorEquals": [E.ALL], "MaxAttempts": 0}], [0], "X") is None


def test_first_matching_retrier_decides_even_when_exhausted():
    # States Language spec (Retrying after error): the first Retrier whose ErrorEquals matches
    # applies; an exhausted one makes the state fail (later retriers are not consulted).
    retriers = [{"ErrorEquals": ["A"], "MaxAttempts": 1, "IntervalSeconds": 5},
                {"ErrorEquals": [E.ALL], "MaxAttempts": 5, "IntervalSeconds": 7}]
    assert decide_retry(retriers, [0, 0], "A") == (0, 5.0)
    assert decide_retry(retriers, [1, 0], "A") is None
    assert decide_retry(retriers, [1, 0], "B") == (1, 7.0)
    assert decide_retry(retriers, [0, 2], "B") == (1, 28.0)


def test_non_matching_error_is_not_retried():
    assert decide_retry([{"ErrorEquals": ["A"]}], [0], "B") is None
    assert decide_retry([], [], "B") is None


def test_max_delay_caps_the_backoff():
    # [EH] MaxDelaySeconds: "the maximum value ... up to which a retry interval can increase".
    r = [{"ErrorEquals": [E.ALL], "IntervalSeconds": 3, "BackoffRate": 3, "MaxAttempts": 10,
          "MaxDelaySeconds": 20}]
    assert [decide_retry(r, [n], "X")[1] for n in range(5)] == [3.0, 9.0, 20.0, 20.0, 20.0]


INTERVALS = st.integers(min_value=1, max_value=3600)
RATES = st.floats(min_value=1.0, max_value=5.0, allow_nan=False)
ATTEMPTS = st.integers(min_value=0, max_value=12)


@given(INTERVALS, RATES, ATTEMPTS, st.integers(min_value=0, max_value=12),
       st.one_of(st.none(), st.integers(min_value=1, max_value=86400)))
def test_delay_is_interval_times_rate_to_the_n_capped(interval, rate, max_attempts, n, max_delay):
    r = {"ErrorEquals": [E.ALL], "IntervalSeconds": interval, "BackoffRate": rate,
         "MaxAttempts": max_attempts}
    if max_delay is not None:
        r["MaxDelaySeconds"] = max_delay
    got = decide_retry([r], [n], "Boom")
    if n >= max_attempts:
        assert got is None
        return
    expected = interval * rate ** n
    if max_delay is not None:
        expected = min(expected, max_delay)
    assert got[0] == 0
    assert math.isclose(got[1], expected, rel_tol=1e-9)


@given(INTERVALS, RATES, st.integers(min_value=0, max_value=10))
def test_delays_never_shrink_without_jitter(interval, rate, n):
    r = [{"ErrorEquals": [E.ALL], "IntervalSeconds": interval, "BackoffRate": rate, "MaxAttempts": 20}]
    assert decide_retry(r, [n + 1], "X")[1] >= decide_retry(r, [n], "X")[1]


@given(INTERVALS, RATES, st.integers(min_value=0, max_value=10),
       st.one_of(st.none(), st.integers(min_value=1, max_value=600)), st.integers())
def test_full_jitter_stays_between_zero_and_the_backoff(interval, rate, n, max_delay, seed):
    # [EH]/[CDK] JitterStrategy FULL: a random delay in [0, computed backoff].
    r = {"ErrorEquals": [E.ALL], "IntervalSeconds": interval, "BackoffRate": rate, "MaxAttempts": 99}
    if max_delay is not None:
        r["MaxDelaySeconds"] = max_delay
    cap = decide_retry([r], [n], "X")[1]
    got = decide_retry([{**r, "JitterStrategy": "FULL"}], [n], "X", random.Random(seed))
    assert got[0] == 0
    assert 0.0 <= got[1] <= cap


def test_full_jitter_actually_varies():
    r = [{"ErrorEquals": [E.ALL], "IntervalSeconds": 100, "JitterStrategy": "FULL"}]
    delays = {decide_retry(r, [0], "X", random.Random(s))[1] for s in range(20)}
    assert len(delays) > 10


def test_jitter_none_is_the_plain_backoff():
    # [CDK] NONE: "equivalent to if Jitter was not declared".
    r = [{"ErrorEquals": [E.ALL], "IntervalSeconds": 4, "JitterStrategy": "NONE"}]
    assert decide_retry(r, [1], "X", random.Random(1)) == (0, 8.0)


@settings(max_examples=50)
@given(st.lists(st.fixed_dictionaries({
    "ErrorEquals": st.lists(st.sampled_from(["A", "B", E.ALL, E.TASK_FAILED, E.TIMEOUT]), min_size=1, max_size=3),
    "IntervalSeconds": INTERVALS, "BackoffRate": RATES, "MaxAttempts": ATTEMPTS,
    "JitterStrategy": st.sampled_from(["FULL", "NONE"])}), max_size=4),
    st.sampled_from(["A", "B", "C", E.TIMEOUT, E.HEARTBEAT_TIMEOUT, E.RUNTIME]), st.integers(), st.data())
def test_decisions_are_pure(retriers, error, seed, data):
    counts = [data.draw(st.integers(min_value=0, max_value=12)) for _ in retriers]
    frozen = repr(retriers), list(counts)
    first = decide_retry(retriers, counts, error, random.Random(seed))
    again = decide_retry(retriers, counts, error, random.Random(seed))
    assert first == again
    assert (repr(retriers), counts) == frozen   # inputs are not mutated
    if first is not None:
        i, _ = first
        assert error_matches(retriers[i]["ErrorEquals"], error)
        assert not any(error_matches(r["ErrorEquals"], error) for r in retriers[:i])
