"""Batches as context managers: :class:`Batch` (for :class:`~werk.Client`) and
:class:`AsyncBatch` (for :class:`~werk.AsyncClient`).

Entering sends ``BATCH NEW`` (or ``BATCH OPEN`` to reopen one), the block pushes the
members, and a clean exit sends ``BATCH COMMIT``. Members are ordinary pushes whose
``custom`` carries ``"bid"``, exactly as Faktory Enterprise expects, so the same code runs
against werk's server and against Enterprise.

While a block runs, its bid is the *current batch* (:func:`current_bid`, a
:class:`contextvars.ContextVar`): pushes of typed job functions (``resize.push(...)``, and
anything else through :meth:`werk.App.push_job`) join it. A context variable belongs to
the thread or asyncio task that entered the block, and to the tasks that task creates
inside it; a thread started inside the block does not inherit it (push through the batch
object there).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from contextvars import ContextVar, Token
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from werk._errors import ConfigurationError, JobValidationError
from werk._job import Job, When

if TYPE_CHECKING:
    from werk.client._aio import AsyncClient
    from werk.client._status import BatchStatus
    from werk.client._sync import Client

__all__ = ["AsyncBatch", "Batch", "current_bid", "joined"]

log = logging.getLogger("werk.client")

_CURRENT: ContextVar[str | None] = ContextVar("werk_current_batch", default=None)
_JOB_FIELDS = Job.__slots__


def current_bid() -> str | None:
    """The bid of the batch block being run in this context (thread or task), or None.

    Example::

        with client.batch(success=werk.Job("Done")) as batch:
            assert current_bid() == batch.bid
    """
    return _CURRENT.get()


def _callback(name: str, value: Any) -> Job | None:
    # A typed job function (or anything with to_job()) stands for its job with no arguments;
    # ``fn.to_job(*args)`` gives one with arguments.
    if value is None or isinstance(value, Job):
        return value
    to_job = getattr(value, "to_job", None)
    if callable(to_job):
        job = to_job()
        if isinstance(job, Job):
            return job
    raise JobValidationError(
        name, f"must be a werk.Job or a job function's to_job(...), got {value!r:.80}"
    )


def _custom_with(custom: Mapping[str, Any] | None, bid: str) -> dict[str, Any]:
    if not custom:
        return {"bid": bid}
    if not isinstance(custom, Mapping):
        raise JobValidationError("custom", f"must be a mapping, got {type(custom).__name__}")
    given = custom.get("bid")
    if given is not None and given != bid:
        raise JobValidationError(
            "custom", f"names batch {given!r}, but it is pushed into batch {bid!r}"
        )
    return {**custom, "bid": bid}


def joined(job: Job, bid: str) -> Job:
    """A copy of ``job`` that is a member of batch ``bid`` (``custom.bid``).

    Example::

        >>> joined(Job("Resize", jid="0123456789abcdef"), "b-1").custom
        {'bid': 'b-1'}
    """
    member = Job.__new__(Job)
    for name in _JOB_FIELDS:  # a plain copy: copy.copy() costs several times more
        setattr(member, name, getattr(job, name))
    member.custom = _custom_with(job.custom, bid)
    return member


def _member(item: Job | Mapping[str, Any], bid: str) -> Job | Mapping[str, Any]:
    if isinstance(item, Job):
        return joined(item, bid)
    if isinstance(item, Mapping):
        return {**item, "custom": _custom_with(item.get("custom"), bid)}
    return item  # push_bulk says what is wrong with it


class _Batch:
    """What both flavours share: the definition, the bid, and the current-batch variable."""

    def __init__(
        self,
        *,
        bid: str | None = None,
        description: str | None = None,
        success: Any = None,
        complete: Any = None,
        parent_bid: str | None = None,
    ) -> None:
        self.bid: str | None = bid
        """The batch id (``b-...``): set once the block is entered (at once when reopening)."""
        self.description = description
        self.success = _callback("success", success)
        self.complete = _callback("complete", complete)
        self.parent_bid = parent_bid
        self.committed = False
        """True once the last block's ``BATCH COMMIT`` was answered."""
        self._token: Token[str | None] | None = None

    def __repr__(self) -> str:
        return f"<werk.{type(self).__name__} {self.bid or '(not created)'}>"

    def _entering(self) -> str | None:
        # The bid to reopen (None: create the batch); entering the object again after its
        # block ended reopens the same batch.
        if self._token is not None:
            raise ConfigurationError(f"the block of batch {self.bid} is already running")
        self.committed = False
        return self.bid

    def _started(self, bid: str) -> None:
        self.bid = bid
        self._token = _CURRENT.set(bid)

    def _leave(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            _CURRENT.reset(token)

    def _check(self) -> str:
        if self.bid is None:
            raise JobValidationError(
                "bid", "the batch does not exist yet: push inside its with block"
            )
        return self.bid

    def _uncommitted(self) -> None:
        log.warning(
            "batch %s not committed: its block raised (it expires unless reopened and "
            "committed; members already pushed still run)",
            self.bid,
        )


class Batch(_Batch):
    """A Faktory batch, made by :meth:`werk.Client.batch` or :meth:`werk.Client.reopen_batch`.

    ``with`` sends ``BATCH NEW`` (or ``BATCH OPEN``); :meth:`push` and :meth:`push_bulk`
    take the client's arguments and push members (``custom.bid`` set); leaving the block
    normally sends ``BATCH COMMIT``, after which the callbacks fire once every member has
    run (complete) or succeeded (success). Members run as soon as they are pushed.

    If the block raises, the batch is **not** committed and the exception propagates: the
    batch stays open, its callbacks never fire, the members already pushed still run, and
    the server deletes it 30 minutes after it was created (unless it is reopened and
    committed before then; a reopened batch that raises stays as it was). Entering the same
    object again after its block ended reopens the batch (BATCH OPEN ... COMMIT).

    Example::

        with client.batch(description="thumbnails", success=werk.Job("Notify", [7])) as batch:
            for image in images:
                batch.push("Resize", image)
            resize.push(99)                  # a typed job function joins the batch too
        print(client.batch_status(batch.bid).pending)
    """

    def __init__(self, client: Client, **definition: Any) -> None:
        super().__init__(**definition)
        self.client = client

    def __enter__(self) -> Batch:
        bid = self._entering()
        if bid is not None:
            bid = self.client.batch_open(bid)
        else:
            bid = self.client.batch_new(
                success=self.success,
                complete=self.complete,
                description=self.description,
                parent_bid=self.parent_bid,
            )
        self._started(bid)
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self._leave()
        if exc_type is not None:
            self._uncommitted()
            return
        self.client.batch_commit(self._check())
        self.committed = True

    def push(
        self,
        job_or_jobtype: Job | str,
        /,
        *args: Any,
        jid: str | None = None,
        queue: str | None = None,
        retry: int | None = None,
        reserve_for: int | None = None,
        at: When | None = None,
        backtrace: int | None = None,
        custom: Mapping[str, Any] | None = None,
        unique_for: float | timedelta | None = None,
        unique_until: str | None = None,
        expires_in: float | timedelta | None = None,
        expires_at: datetime | str | None = None,
    ) -> str:
        """Push a member; the arguments are :meth:`werk.Client.push`'s. Returns its jid.

        Example::

            batch.push("Resize", 42, queue="images")
        """
        bid = self._check()
        if isinstance(job_or_jobtype, Job):
            job_or_jobtype = joined(job_or_jobtype, bid)
        else:
            custom = _custom_with(custom, bid)
        return self.client.push(
            job_or_jobtype,
            *args,
            jid=jid,
            queue=queue,
            retry=retry,
            reserve_for=reserve_for,
            at=at,
            backtrace=backtrace,
            custom=custom,
            unique_for=unique_for,
            unique_until=unique_until,
            expires_in=expires_in,
            expires_at=expires_at,
        )

    def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """Push many members, as :meth:`werk.Client.push_bulk`; returns ``{jid: error}``.

        Example::

            batch.push_bulk(werk.Job("Resize", [n]) for n in range(1000))
        """
        bid = self._check()
        return self.client.push_bulk(_member(job, bid) for job in jobs)

    def child(
        self,
        *,
        description: str | None = None,
        success: Any = None,
        complete: Any = None,
    ) -> Batch:
        """A new batch whose parent is this one: its callbacks fire first, and this
        batch's wait for them.

        Example::

            with client.batch(success=werk.Job("AllDone")) as parent:
                with parent.child(success=werk.Job("StepDone")) as step:
                    step.push("Step", 1)
        """
        return Batch(
            self.client,
            description=description,
            success=success,
            complete=complete,
            parent_bid=self._check(),
        )

    def status(self) -> BatchStatus:
        """This batch's ``BATCH STATUS`` (see :class:`werk.BatchStatus`).

        Example::

            print(batch.status().pending)
        """
        return self.client.batch_status(self._check())


class AsyncBatch(_Batch):
    """The asyncio twin of :class:`Batch`, made by :meth:`werk.AsyncClient.batch` or
    :meth:`werk.AsyncClient.reopen_batch`: ``async with``, and its methods are awaited.

    As with :class:`Batch`, a block that raises leaves the batch uncommitted: its callbacks
    never fire, members already pushed still run, and the server deletes it 30 minutes
    after it was created. Tasks created inside the block push typed jobs into the batch
    too: let them finish before the block ends.

    Example::

        async with client.batch(complete=werk.Job("Report")) as batch:
            await asyncio.gather(*(batch.push("Resize", n) for n in range(100)))
    """

    def __init__(self, client: AsyncClient, **definition: Any) -> None:
        super().__init__(**definition)
        self.client = client

    async def __aenter__(self) -> AsyncBatch:
        bid = self._entering()
        if bid is not None:
            bid = await self.client.batch_open(bid)
        else:
            bid = await self.client.batch_new(
                success=self.success,
                complete=self.complete,
                description=self.description,
                parent_bid=self.parent_bid,
            )
        self._started(bid)
        return self

    async def __aexit__(self, exc_type: object, *exc_info: object) -> None:
        self._leave()
        if exc_type is not None:
            self._uncommitted()
            return
        await self.client.batch_commit(self._check())
        self.committed = True

    async def push(
        self,
        job_or_jobtype: Job | str,
        /,
        *args: Any,
        jid: str | None = None,
        queue: str | None = None,
        retry: int | None = None,
        reserve_for: int | None = None,
        at: When | None = None,
        backtrace: int | None = None,
        custom: Mapping[str, Any] | None = None,
        unique_for: float | timedelta | None = None,
        unique_until: str | None = None,
        expires_in: float | timedelta | None = None,
        expires_at: datetime | str | None = None,
    ) -> str:
        """Push a member; see :meth:`Batch.push`."""
        bid = self._check()
        if isinstance(job_or_jobtype, Job):
            job_or_jobtype = joined(job_or_jobtype, bid)
        else:
            custom = _custom_with(custom, bid)
        return await self.client.push(
            job_or_jobtype,
            *args,
            jid=jid,
            queue=queue,
            retry=retry,
            reserve_for=reserve_for,
            at=at,
            backtrace=backtrace,
            custom=custom,
            unique_for=unique_for,
            unique_until=unique_until,
            expires_in=expires_in,
            expires_at=expires_at,
        )

    async def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """Push many members; see :meth:`Batch.push_bulk`."""
        bid = self._check()
        return await self.client.push_bulk(_member(job, bid) for job in jobs)

    def child(
        self,
        *,
        description: str | None = None,
        success: Any = None,
        complete: Any = None,
    ) -> AsyncBatch:
        """A new batch whose parent is this one; see :meth:`Batch.child`."""
        return AsyncBatch(
            self.client,
            description=description,
            success=success,
            complete=complete,
            parent_bid=self._check(),
        )

    async def status(self) -> BatchStatus:
        """This batch's ``BATCH STATUS``; see :meth:`Batch.status`."""
        return await self.client.batch_status(self._check())
