"""tasks_app/scheduling/backoff.py: the retry delay curves and their cap."""
import pytest

from tasks_app.models import RetryBackoff
from tasks_app.scheduling import backoff


@pytest.mark.parametrize(("curve", "delays"), [
    (RetryBackoff.CONSTANT, [30, 30, 30, 30, 30]),
    (RetryBackoff.LINEAR, [30, 60, 90, 120, 150]),
    (RetryBackoff.EXPONENTIAL, [30, 60, 120, 240, 480]),
])
def test_retry_delay_grows_by_backoff(curve, delays):
    assert [backoff.retry_delay(backoff=curve, delay=30, attempt=attempt, cap=3600)
            for attempt in range(1, 6)] == delays


def test_retry_delay_is_capped_and_never_negative():
    assert backoff.retry_delay(backoff="exponential", delay=30, attempt=10, cap=600) == 600  # 15,360 uncapped
    assert backoff.retry_delay(backoff="linear", delay=30, attempt=21, cap=600) == 600
    assert backoff.retry_delay(backoff="exponential", delay=30, attempt=5000, cap=600) == 600
    assert backoff.retry_delay(backoff="constant", delay=-5, attempt=1, cap=600) == 0
    assert backoff.retry_delay(backoff="constant", delay=30, attempt=1, cap=-1) == 0
    assert backoff.retry_delay(backoff="exponential", delay=0.5, attempt=3, cap=10) == 2.0


def test_retry_delay_refuses_nonsense():
    with pytest.raises(ValueError):
        backoff.retry_delay(backoff="fibonacci", delay=30, attempt=1, cap=600)
    with pytest.raises(ValueError, match="attempt"):
        backoff.retry_delay(backoff="constant", delay=30, attempt=0, cap=600)
