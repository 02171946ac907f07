"""tasks_app/db/locks.py: a transaction that loses a deadlock or serialization race runs again.

The lock order itself is held by tests/test_concurrency.py, on PostgreSQL where it matters."""
import psycopg.errors
import pytest
from django.db import OperationalError, transaction

from tasks_app.db.locks import ATTEMPTS, retry_on_conflict

pytestmark = pytest.mark.django_db(transaction=True)  # not inside a test transaction: retries need the outermost


def losing(times: int, cause: Exception):
    calls = []

    @retry_on_conflict
    def write() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError(str(cause)) from cause
        return "written"

    return write, calls


@pytest.mark.parametrize("cause", [psycopg.errors.DeadlockDetected("deadlock detected"),
                                   psycopg.errors.SerializationFailure("could not serialize access")])
def test_a_transaction_that_loses_a_race_is_run_again(cause):
    write, calls = losing(2, cause)
    assert write() == "written" and len(calls) == 3


def test_it_gives_up_after_a_few_attempts():
    write, calls = losing(ATTEMPTS, psycopg.errors.DeadlockDetected("deadlock detected"))
    with pytest.raises(OperationalError):
        write()
    assert len(calls) == ATTEMPTS


def test_other_database_errors_and_inner_transactions_are_not_run_again():
    write, calls = losing(1, psycopg.errors.DiskFull("could not extend file"))
    with pytest.raises(OperationalError):
        write()
    assert len(calls) == 1
    write, calls = losing(1, psycopg.errors.DeadlockDetected("deadlock detected"))
    with transaction.atomic(), pytest.raises(OperationalError):
        write()  # only the outermost transaction can be run again
    assert len(calls) == 1
