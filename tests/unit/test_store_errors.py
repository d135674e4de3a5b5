"""Every Firestore failure is translated once, in lib.core.store (``translate``).

Codes the emulator cannot produce (a permission denied to the function's own
credentials, a missing index) are built here as the api-core exceptions the
Firestore client raises; tests/integration/test_store_failures.py provokes the
ones it can.
"""

from __future__ import annotations

import logging

import google.auth.exceptions
import pytest
from google.api_core import exceptions

from lib.core import errors
from lib.core.store import LeaseLost, translate

INDEX_URL = ("https://console.firebase.google.com/v1/r/project/acme-prod-4711/firestore/"
             "indexes?create_composite=ClNwcm9qZWN0cy9hY21l")


def transaction_failed() -> ValueError:
    return ValueError("Failed to commit transaction in 1 attempts.")


def unavailable_rollback() -> ValueError:
    """What python-firestore raises when the rollback after a timed-out call fails."""
    try:
        try:
            raise exceptions.DeadlineExceeded("Deadline Exceeded")
        except exceptions.DeadlineExceeded:
            raise ValueError("Transaction not in progress, cannot be used in API requests."
                             ) from None  # as python-firestore: no cause, only a context
    except ValueError as exc:
        return exc


GENERIC_500 = [
    ("permission denied (our own credentials)",
     exceptions.PermissionDenied("Missing or insufficient permissions.")),
    ("unauthenticated (our own credentials)",
     exceptions.Unauthenticated("Request had invalid authentication credentials.")),
    ("a missing index, with its console URL",
     exceptions.FailedPrecondition(f"The query requires an index. You can create it here: "
                                   f"{INDEX_URL}")),
    ("an invalid argument not about a transaction",
     exceptions.InvalidArgument("Cannot convert an array value in an array value.")),
    ("not found", exceptions.NotFound("No document to update: projects/acme-prod-4711/x")),
    ("resource exhausted", exceptions.TooManyRequests("Quota exceeded.")),
    ("internal", exceptions.InternalServerError("Internal error in Firestore.")),
    ("unknown", exceptions.Unknown("?")),
    ("the encoder's ValueError on an empty key",
     ValueError("One or more components is not a string or is empty.")),
    ("the encoder's ValueError on a big integer", ValueError("Value out of range: 2**63")),
    ("a surrogate the encoder cannot encode",
     UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")),
    ("google-auth failing to refresh our credentials",
     google.auth.exceptions.RefreshError("invalid_grant: account deleted")),
]


@pytest.mark.parametrize("failure", [f for _, f in GENERIC_500], ids=[i for i, _ in GENERIC_500])
def test_a_failure_that_is_not_the_callers_is_a_generic_500_and_logged_with_its_cause(
        failure, caplog):
    caplog.set_level(logging.ERROR, logger="operations.store")
    translated = translate(failure)
    assert isinstance(translated, exceptions.InternalServerError)
    body = errors.error_body(translated)
    assert body == errors.error_body(errors.internal_error())
    assert body["error"]["message"] == "Internal error."
    assert body["error"]["status"] == "INTERNAL"
    [line] = caplog.records
    logged = line.json_fields["store_error"]
    if isinstance(failure, exceptions.GoogleAPICallError):
        assert logged["status"] == errors.status_name(failure)
        assert logged["detail"] == failure.message  # e.g. the index URL, for the operator
    else:
        assert logged["reason"] == type(failure).__name__
        assert logged["detail"] == ""  # may quote a stored value or a token


def test_a_missing_index_reaches_the_log_not_the_caller(caplog):
    caplog.set_level(logging.ERROR, logger="operations.store")
    translated = translate(exceptions.FailedPrecondition(f"requires an index: {INDEX_URL}"))
    assert "acme-prod-4711" not in str(errors.error_body(translated))
    assert INDEX_URL in caplog.records[0].json_fields["store_error"]["detail"]


UNAVAILABLE = [
    ("unavailable", exceptions.ServiceUnavailable("connection refused")),
    ("deadline exceeded", exceptions.DeadlineExceeded("Deadline Exceeded")),
    ("a call cut off on the way (the emulator under load)",
     exceptions.Cancelled("call already cancelled")),
    ("retries ran out of time", exceptions.RetryError("Timeout of 10.0s exceeded", None)),
    ("a rollback after a timed-out call", unavailable_rollback()),
]


@pytest.mark.parametrize("failure", [f for _, f in UNAVAILABLE], ids=[i for i, _ in UNAVAILABLE])
def test_an_unavailable_store_is_503_store_unavailable(failure):
    translated = translate(failure)
    assert isinstance(translated, exceptions.ServiceUnavailable)
    assert translated.reason == "STORE_UNAVAILABLE"
    assert errors.http_status(translated) == 503


CONTENTION = [
    ("aborted", exceptions.Aborted("Transaction lock timeout.")),
    ("python-firestore giving up on a commit", transaction_failed()),
    ("an expired transaction",
     exceptions.InvalidArgument("The referenced transaction has expired or is no longer valid.")),
]


@pytest.mark.parametrize("failure", [f for _, f in CONTENTION], ids=[i for i, _ in CONTENTION])
def test_contention_is_409_aborted_for_the_caller_to_retry(failure):
    translated = translate(failure)
    assert isinstance(translated, exceptions.Aborted)
    assert translated.reason == "CONTENTION"
    assert errors.http_status(translated) == 409
    assert "lock" not in translated.message


def test_a_create_on_a_taken_id_stays_already_exists_for_the_caller():
    translated = translate(exceptions.Conflict("Document already exists: projects/x/documents/y"))
    assert isinstance(translated, exceptions.InternalServerError)  # a plain 409 is not ours
    translated = translate(exceptions.AlreadyExists("Document already exists: projects/x/y"))
    assert isinstance(translated, exceptions.AlreadyExists)
    assert translated.reason == "ALREADY_EXISTS"
    assert "projects/x" not in translated.message


@pytest.mark.parametrize("own", [
    errors.error(exceptions.NotFound, "Operation x was not found.", "OPERATION_NOT_FOUND"),
    LeaseLost("another worker holds the lease"),
    KeyError("name"),
], ids=["an error the service raised itself", "LeaseLost", "a bug's KeyError"])
def test_what_is_not_a_firestore_failure_passes_unchanged(own):
    assert translate(own) is own
