"""How long to wait before trying again: the retry delay curves (constant, linear, exponential),
capped. Pure, like cron.py: it reads only its arguments."""
from __future__ import annotations

import sys

from tasks_app.models import RetryBackoff


def retry_delay(*, backoff: str, delay: float, attempt: int, cap: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1 is the first retry), at most ``cap``.

    constant: ``delay``; linear: ``delay * attempt``; exponential: ``delay * 2 ** (attempt - 1)``.
    Never negative. The growth is compared with the cap before multiplying, so a thousandth retry
    waits the cap instead of raising OverflowError.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts retries from 1, got {attempt}")
    kind = RetryBackoff(backoff)
    ceiling = max(0.0, float(cap))
    if delay <= 0:
        return 0.0
    if kind == RetryBackoff.CONSTANT:
        growth = 1
    elif kind == RetryBackoff.LINEAR:
        growth = attempt
    elif attempt - 1 >= sys.float_info.max_exp:
        return ceiling  # 2 ** 1024 is past every float, so past ceiling / delay too
    else:
        growth = 2 ** (attempt - 1)
    if growth >= ceiling / delay:
        return ceiling
    return float(delay * growth)
