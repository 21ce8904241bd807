"""The options of Faktory Enterprise's unique and expiring jobs, written into a job's
``custom`` as the server reads them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from werk._errors import JobValidationError
from werk._protocol.timefmt import format_time, parse_time

__all__ = ["enterprise_custom"]


def _seconds(name: str, value: object) -> int | float:
    # A positive duration as the number Enterprise reads (an int when it is whole).
    if isinstance(value, timedelta):
        value = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobValidationError(
            name, f"must be a number of seconds or a timedelta, got {type(value).__name__}"
        )
    if not (math.isfinite(value) and value > 0):
        raise JobValidationError(name, f"must be more than 0 seconds, got {value!r}")
    return int(value) if value == int(value) else value


def enterprise_custom(
    custom: Mapping[str, Any] | None,
    unique_for: float | timedelta | None,
    unique_until: str | None,
    expires_in: float | timedelta | None,
    expires_at: datetime | str | None,
) -> dict[str, Any] | None:
    """``custom`` with the options of unique and expiring jobs written in, as Faktory
    Enterprise reads them: ``unique_for`` and ``expires_in`` in seconds (a number or a
    timedelta), ``unique_until`` ``"success"`` or ``"start"``, ``expires_at`` as RFC 3339
    (an aware datetime or a string with a zone). Raises :class:`~werk.JobValidationError`.

    Example::

        >>> enterprise_custom({"a": 1}, timedelta(minutes=1), "start", None, None)
        {'a': 1, 'unique_for': 60, 'unique_until': 'start'}
        >>> enterprise_custom(None, None, None, 0, None)
        Traceback (most recent call last):
        ...
        werk.JobValidationError: expires_in: must be more than 0 seconds, got 0
    """
    if custom is not None and not isinstance(custom, Mapping):
        raise JobValidationError("custom", "must be a mapping")
    out: dict[str, Any] = dict(custom or {})
    options: dict[str, Any] = {}
    if unique_for is not None:
        options["unique_for"] = _seconds("unique_for", unique_for)
    if unique_until is not None:
        if unique_until not in ("success", "start"):
            raise JobValidationError(
                "unique_until", f'must be "success" or "start", got {unique_until!r}'
            )
        if unique_for is None and "unique_for" not in out:
            raise JobValidationError("unique_until", "needs unique_for (the lock's time limit)")
        options["unique_until"] = unique_until
    if expires_in is not None:
        options["expires_in"] = _seconds("expires_in", expires_in)
    if expires_at is not None:
        if expires_in is not None:
            raise JobValidationError("expires_at", "give expires_at or expires_in, not both")
        if isinstance(expires_at, datetime):
            options["expires_at"] = format_time(expires_at.astimezone(timezone.utc))
        elif isinstance(expires_at, str):
            try:
                parse_time(expires_at)
            except ValueError:
                raise JobValidationError(
                    "expires_at",
                    f"must be an RFC3339 timestamp with a zone (Z or +HH:MM), got {expires_at!r}",
                ) from None
            options["expires_at"] = expires_at
        else:
            raise JobValidationError(
                "expires_at", f"must be a datetime or str, got {type(expires_at).__name__}"
            )
    for key in options:
        if key in out and out[key] != options[key]:
            raise JobValidationError(key, f"given both as an option and in custom ({out[key]!r})")
    out.update(options)
    return out or None
