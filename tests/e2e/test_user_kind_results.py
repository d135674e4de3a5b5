"""What a user's own handler returns can never break a read: each value in
the table ends its operation FAILED with code 13 INTERNAL and a message
saying what and where, is not retried, and Get and List over the parent
holding all of them answer 200."""

from __future__ import annotations

import pytest

from tests.e2e.user_kinds import UNSTORABLE
from tests.waiting import wait_for

EXPECTED = {
    "a datetime": "datetime at response.when",
    "an empty key": "empty key",
    "nan": "at response.x",
    "bytes": "bytes at response.b",
    "a 2,000,000-character string": "bytes",
    "a list nested 40 deep": "response.deep",
}


@pytest.fixture
def ended(api, parent):
    """One operation per row of the table, each waited on until done."""
    names = {}
    for returns in UNSTORABLE:
        created = api("POST", f"/v1/{parent}/jobs",
                      json={"kind": "user.accidental", "params": {"returns": returns}})
        assert created.status_code == 200, created.text
        names[returns] = created.json()["name"]
    for returns, name in names.items():
        wait_for(lambda name=name: api("GET", f"/v1/{name}").json().get("done"), timeout=30,
                 what=f"{returns} to end")
    return names


@pytest.mark.parametrize("returns", list(UNSTORABLE), ids=list(UNSTORABLE))
def test_a_response_that_cannot_be_stored_ends_the_operation_internal(api, ended, returns):
    answer = api("GET", f"/v1/{ended[returns]}")
    assert answer.status_code == 200
    operation = answer.json()
    assert operation["done"] is True and "response" not in operation
    assert operation["error"]["code"] == 13
    assert operation["error"]["message"].startswith("the job's response")
    assert EXPECTED[returns] in operation["error"]["message"]
    assert operation["metadata"]["value"]["attempt"] == 1, "never retried"


def test_list_over_the_parent_holding_all_of_them_answers_200(api, parent, ended):
    listed = api("GET", f"/v1/{parent}/operations")
    assert listed.status_code == 200
    assert {op["name"] for op in listed.json()["operations"]} == set(ended.values())
    assert {op["error"]["code"] for op in listed.json()["operations"]} == {13}


def test_each_is_one_warning_in_the_workers_log_and_no_stack_trace(stack, ended):
    log = stack.log_text()
    for name in ended.values():
        lines = [line for line in log.splitlines() if name in line and "cannot be stored" in line]
        assert len(lines) == 1 and '"severity": "WARNING"' in lines[0]
        assert "stack_trace" not in lines[0]
