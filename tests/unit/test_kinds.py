"""demo.countdown's params: what is accepted, and the 400s for everything else."""

from __future__ import annotations

import pytest
from google.api_core import exceptions

from lib.kinds import get_kind

COUNTDOWN = get_kind("demo.countdown")


@pytest.mark.parametrize(("params", "valid"), [
    ({"steps": 1}, {"steps": 1, "stepSeconds": 1.0}),
    ({"steps": 10000, "stepSeconds": 0}, {"steps": 10000, "stepSeconds": 0.0}),
    ({"steps": 5.0, "stepSeconds": 60, "failAtStep": 5},
     {"steps": 5, "stepSeconds": 60.0, "failAtStep": 5}),
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
