"""demo.countdown's params: what is accepted, and the 400s for everything else."""

from __future__ import annotations

import pytest
from google.api_core import exceptions

from lib.kinds import get_kind

COUNTDOWN = get_kind("demo.countdown")


@pytest.mark.parametrize(("params", "valid"), [
    ({"steps": 1}, {"steps": 1, "stepSeconds": 1.0, "ignoreCancel": False}),
    ({"steps": 10000, "stepSeconds": 0}, {"steps": 10000, "stepSeconds": 0.0,
                                          "ignoreCancel": False}),
    ({"steps": 5.0, "stepSeconds": 60, "failAtStep": 5, "ignoreCancel": True},
     {"steps": 5, "stepSeconds": 60.0, "failAtStep": 5, "ignoreCancel": True}),
], ids=["defaults applied", "bounds inclusive", "integral float accepted"])
def test_valid_params(params, valid):
    assert COUNTDOWN.validate(params) == valid


@pytest.mark.parametrize(("params", "says"), [
    ({}, "'steps' is required"),
    (None, "'steps' is required"),
    ({"steps": 0}, "at least 1"),
    ({"steps": 10001}, "at most 10000"),
    ({"steps": "5"}, "must be a int"),
    ({"steps": True}, "must be a int"),
    ({"steps": 2.5}, "must be a int"),
    ({"steps": 3, "stepSeconds": 61}, "at most 60"),
    ({"steps": 3, "stepSeconds": -1}, "at least 0"),
    ({"steps": 3, "stepSeconds": float("nan")}, "must be a float"),
    ({"steps": 3, "failAtStep": 4}, "at most 'steps'"),
    ({"steps": 3, "failAtStep": 0}, "at least 1"),
    ({"steps": 3, "colour": "red"}, "Unknown param 'colour'"),
    ([1, 2], "must be a JSON object"),
], ids=["missing steps", "no params", "zero steps", "too many steps", "a string",
        "a boolean", "a fraction", "a long step", "a negative step", "NaN",
        "failAtStep past the end", "failAtStep zero", "an unknown param", "a list"])
def test_bad_params_are_invalid_argument_naming_the_problem(params, says):
    with pytest.raises(exceptions.InvalidArgument) as caught:
        COUNTDOWN.validate(params)
    assert says in caught.value.message


@pytest.mark.parametrize("kind", ["demo.nope", None, 3, ""])
def test_an_unknown_kind_is_invalid_argument(kind):
    with pytest.raises(exceptions.InvalidArgument, match="Unknown kind"):
        get_kind(kind)


# --- cancellable=False, demo.atomic and ignoreCancel ----------------------------------


class _CancelledContext:
    """A context whose cancel was requested long ago: a handler that looks sees it."""

    def __init__(self):
        import threading

        self.cancelled = threading.Event()
        self.cancelled.set()
        self.state = {}
        self.progress = []

    def raise_if_cancelled(self):
        raise exceptions.Cancelled("cancelled")

    def sleep(self, seconds):
        raise exceptions.Cancelled("cancelled")

    def report_progress(self, percent, message=None):
        self.progress.append(percent)

    def checkpoint(self, state):
        self.state = dict(state)

    def on_cancel(self, callback):
        pass


def test_kinds_are_cancellable_unless_registered_otherwise():
    from lib.kinds import is_cancellable

    assert get_kind("demo.countdown").cancellable is True
    assert get_kind("demo.atomic").cancellable is False
    assert is_cancellable("demo.countdown") is True
    assert is_cancellable("demo.atomic") is False
    assert is_cancellable("a.kind.this.process.does.not.serve") is True


def test_demo_atomic_takes_steps_and_step_seconds_only():
    atomic = get_kind("demo.atomic")
    assert atomic.validate({"steps": 2}) == {"steps": 2, "stepSeconds": 1.0}
    with pytest.raises(exceptions.InvalidArgument, match="Unknown param 'ignoreCancel'"):
        atomic.validate({"steps": 2, "ignoreCancel": True})
    with pytest.raises(exceptions.InvalidArgument, match="at most 10000"):
        atomic.validate({"steps": 10001})


def test_demo_atomic_never_looks_at_cancellation_and_reports_progress():
    ctx = _CancelledContext()
    assert get_kind("demo.atomic").handler(ctx, {"steps": 4, "stepSeconds": 0}) == {"steps": 4}
    assert ctx.progress == [25, 50, 75, 100]


def test_countdown_with_ignore_cancel_sleeps_through_a_cancel():
    ctx = _CancelledContext()
    params = get_kind("demo.countdown").validate({"steps": 2, "stepSeconds": 0,
                                                  "ignoreCancel": True})
    assert get_kind("demo.countdown").handler(ctx, params) == {"steps": 2}
    assert ctx.progress == [50, 100]


def test_countdown_without_ignore_cancel_stops_at_a_cancel():
    params = get_kind("demo.countdown").validate({"steps": 2, "stepSeconds": 0})
    assert params["ignoreCancel"] is False
    with pytest.raises(exceptions.Cancelled):
        get_kind("demo.countdown").handler(_CancelledContext(), params)


@pytest.mark.parametrize("value", ["yes", 1, 0, "false"])
def test_ignore_cancel_must_be_a_boolean(value):
    with pytest.raises(exceptions.InvalidArgument, match="'ignoreCancel' must be a bool"):
        get_kind("demo.countdown").validate({"steps": 1, "ignoreCancel": value})
