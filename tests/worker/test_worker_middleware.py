"""Hooks: the per-job hooks of an app's middleware are called in order with their
arguments, and one that raises is logged and skipped, never stopping the others."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import werk
from werk.worker._middleware import Hooks

# Each per-job hook and the arguments it is called with.
CALLS: dict[str, tuple[Any, ...]] = {
    "before_push": ("job",),
    "after_push": ("job",),
    "before_process": ("ctx",),
    "after_process": ("ctx", 0.5),
    "on_failure": ("ctx", ValueError("x"), 0.5),
    "after_fetch": (0.001, True),
}


class Recorder(werk.Middleware):
    """Overrides every per-job hook: records its calls, raises when told to."""

    def __init__(self, name: str, raises: bool) -> None:
        self.name, self.raises = name, raises
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _record(self, hook: str, *args: Any) -> None:
        self.calls.append((hook, args))
        if self.raises:
            raise RuntimeError(f"{self.name}.{hook} broke")

    def before_push(self, job: Any) -> None:
        self._record("before_push", job)

    def after_push(self, job: Any) -> None:
        self._record("after_push", job)

    def before_process(self, ctx: Any) -> None:
        self._record("before_process", ctx)

    def after_process(self, ctx: Any, duration: float) -> None:
        self._record("after_process", ctx, duration)

    def on_failure(self, ctx: Any, error: BaseException, duration: float) -> None:
        self._record("on_failure", ctx, error, duration)

    def after_fetch(self, duration: float, found: bool) -> None:
        self._record("after_fetch", duration, found)


@pytest.mark.parametrize("hook", sorted(CALLS))
@pytest.mark.parametrize("count", [1, 2, 3])
def test_each_hook_reaches_every_middleware_and_a_raising_one_is_logged(
    hook: str, count: int, caplog: pytest.LogCaptureFixture
) -> None:
    # The first middleware raises; the ones after it are still called.
    recorders = [Recorder(f"m{i}", raises=i == 0) for i in range(count)]
    hooks = Hooks(recorders)
    call = getattr(hooks, hook)
    assert call is not None and hooks.has(hook)
    with caplog.at_level(logging.ERROR, logger="werk.worker.middleware"):
        call(*CALLS[hook])
    assert [r.calls for r in recorders] == [[(hook, CALLS[hook])]] * count
    [record] = caplog.records
    assert record.getMessage() == f"middleware Recorder.{hook} raised; ignored"
    assert str(record.exc_info and record.exc_info[1]) == f"m0.{hook} broke"


def test_hooks_no_middleware_overrides_are_none_and_added_middleware_counts() -> None:
    hooks = Hooks([werk.Middleware()])
    assert all(getattr(hooks, hook) is None for hook in CALLS)
    assert not hooks.wanted
    late = Recorder("late", raises=False)
    hooks.add(late)
    assert hooks.after_fetch is not None
    hooks.after_fetch(0.25, False)
    assert late.calls == [("after_fetch", (0.25, False))]
    assert hooks.wanted == frozenset(CALLS)
