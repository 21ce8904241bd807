"""One batch's state, its stored records, its STATUS reply, and the checks of BATCH NEW
(docs/enterprise.md section 3). The extension that drives them is in ``_batches``."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from werk._job import QUEUE_NAME_RE
from werk.server._gojson import GoDecoder, GoJSONError, go_bytes, go_dumps_text, go_quote
from werk.server._gotime import parse_rfc3339
from werk.server._manager import BAD_QUEUE
from werk.server._payload import STRING, JobCodec, Payload, check_field, json_kind

__all__ = [
    "NO_STATE",
    "Batch",
    "BatchInfo",
    "BatchRequest",
    "new_bid",
    "new_jid",
    "parse_new",
    "struct_json",
]

NO_STATE, ENQUEUED, SUCCEEDED = "", "1", "2"  # complete_st / success_st


def new_bid() -> str:
    """``b-`` and 10 random bytes in base64url without padding (14 characters), the form
    of every bid in Enterprise's logs."""
    return "b-" + base64.urlsafe_b64encode(secrets.token_bytes(10)).rstrip(b"=").decode()


def new_jid() -> str:
    """A jid for a callback given without one (16 base64url characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(12)).decode()


def struct_json(pairs: list[tuple[str, Any]]) -> bytes:
    """A JSON object with its keys in the given order (a Go struct), Go's escaping."""
    body = ",".join(f"{go_dumps_text(k)}:{go_dumps_text(v)}" for k, v in pairs)
    return go_bytes("{" + body + "}")


@dataclass(frozen=True)
class BatchInfo:
    """What the web UI shows of a batch (a snapshot; ``Batches.get_batch``)."""

    bid: str
    parent_bid: str
    description: str
    created_at: str  # time of NEW, the server's RFC 3339 form
    committed: bool
    total: int
    pending: int
    failed: int
    complete_st: str  # "" not enqueued (or no such callback), "1" enqueued, "2" succeeded
    success_st: str
    has_complete: bool  # whether a complete callback was given
    has_success: bool
    children: int  # child batches that still exist
    updated: float  # Unix seconds of the last change (retention counts from it)


class Batch:
    """A batch in memory. ``failed_jids`` holds the members that failed and have not
    succeeded since (their number is ``failed``); succeeded members are not remembered.
    ``c_done``/``s_done`` say whether this batch is complete-/success-finished (what its
    parent waits for) and ``open_c``/``open_s`` how many of its children are not."""

    __slots__ = (
        "bid",
        "c_done",
        "children",
        "committed",
        "complete",
        "complete_jid",
        "complete_st",
        "created",
        "created_at",
        "description",
        "failed",
        "failed_jids",
        "open_c",
        "open_s",
        "parent_bid",
        "pending",
        "s_done",
        "success",
        "success_jid",
        "success_st",
        "total",
        "updated",
    )

    def __init__(
        self,
        bid: str,
        parent_bid: str,
        description: str,
        created: float,
        created_at: str,
        complete: bytes | None,
        success: bytes | None,
    ) -> None:
        self.bid = bid
        self.parent_bid = parent_bid
        self.description = description
        self.created = created
        self.created_at = created_at
        self.complete = complete  # the callback job's canonical bytes
        self.success = success
        self.complete_jid = _jid_of(complete)
        self.success_jid = _jid_of(success)
        self.committed = False
        self.total = self.pending = self.failed = 0
        self.complete_st = self.success_st = NO_STATE
        self.updated = created
        self.failed_jids: set[str] = set()
        self.children: list[str] = []
        self.open_c = self.open_s = 0
        self.c_done = self.s_done = False

    # -- the conditions of docs/enterprise.md 3.6 -------------------------------------

    def complete_reached(self) -> bool:
        return self.committed and self.pending == self.failed and not self.open_c

    def success_reached(self) -> bool:
        return self.committed and not self.pending and not self.open_s

    def finished(self) -> tuple[bool, bool]:
        """(complete-finished, success-finished): what the parent waits for."""
        c = self.complete_reached() and (self.complete is None or self.complete_st == SUCCEEDED)
        s = self.success_reached() and (self.success is None or self.success_st == SUCCEEDED)
        return c, s

    # -- records ---------------------------------------------------------------------

    def meta_record(self) -> bytes:
        """What changes seldom: written at NEW, COMMIT and callback state changes."""
        return json.dumps(
            {
                "parent_bid": self.parent_bid,
                "description": self.description,
                "created": self.created,
                "created_at": self.created_at,
                "committed": self.committed,
                "complete_st": self.complete_st,
                "success_st": self.success_st,
                "complete": None if self.complete is None else self.complete.decode(),
                "success": None if self.success is None else self.success.decode(),
            },
            separators=(",", ":"),
        ).encode()

    def counts_record(self) -> bytes:
        """What changes at every member event: small, rewritten each time (the time of
        the last change in whole seconds: retention is counted in days)."""
        return b"%d %d %d %d" % (self.total, self.pending, self.failed, self.updated)

    @classmethod
    def from_records(cls, bid: str, meta: bytes, counts: bytes | None) -> Batch:
        m = json.loads(meta)
        complete, success = m["complete"], m["success"]
        b = cls(
            bid,
            m["parent_bid"],
            m["description"],
            m["created"],
            m["created_at"],
            None if complete is None else complete.encode(),
            None if success is None else success.encode(),
        )
        b.committed = m["committed"]
        b.complete_st = m["complete_st"]
        b.success_st = m["success_st"]
        if counts is not None:
            total, pending, failed, updated = counts.split()
            b.total, b.pending, b.failed = int(total), int(pending), int(failed)
            b.updated = float(updated)
        return b

    # -- replies ---------------------------------------------------------------------

    def status(self) -> bytes:
        """The STATUS reply's JSON (key order: the Go client's struct since 1.9.2)."""
        pairs: list[tuple[str, Any]] = [("bid", self.bid)]
        if self.parent_bid:
            pairs.append(("parent_bid", self.parent_bid))
        if self.description:
            pairs.append(("description", self.description))
        pairs += [
            ("created_at", self.created_at),
            ("complete_st", self.complete_st),
            ("success_st", self.success_st),
            ("total", self.total),
            ("pending", self.pending),
            ("failed", self.failed),
        ]
        return struct_json(pairs)

    def info(self, children: int) -> BatchInfo:
        return BatchInfo(
            self.bid,
            self.parent_bid,
            self.description,
            self.created_at,
            self.committed,
            self.total,
            self.pending,
            self.failed,
            self.complete_st,
            self.success_st,
            self.complete is not None,
            self.success is not None,
            children,
            self.updated,
        )


def _jid_of(callback: bytes | None) -> str:
    if callback is None:
        return ""
    jid: str = json.loads(callback)["jid"]
    return jid


# -- BATCH NEW ---------------------------------------------------------------------------


@dataclass
class BatchRequest:
    """A checked ``BATCH NEW`` body (callbacks as canonical job bytes, jid filled in)."""

    parent_bid: str
    description: str
    complete: bytes | None
    success: bytes | None


_DECODER = GoDecoder()


def parse_new(data: bytes, codec: JobCodec) -> BatchRequest | str:
    """Decode and check a ``BATCH NEW`` body; the error text (without ``-ERR``) if bad."""
    try:
        value = _DECODER.loads(data)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise GoJSONError(
                f"json: cannot unmarshal {json_kind(value)} into Go value of type client.Batch"
            )
        fields = {
            key: check_field(value.get(key), f"Batch.{key}", STRING)
            for key in ("bid", "parent_bid", "description")
        }
        callbacks: dict[str, Payload | None] = {}
        for name in ("complete", "success"):
            raw = value.get(name)
            callbacks[name] = (
                None if raw is None else codec.check_job(raw, f"Batch.{name}", "client.Job", False)
            )
    except GoJSONError as exc:
        return f"invalid JSON: {exc}"
    if fields["bid"]:
        return "bid must be blank when creating a new batch"
    if callbacks["complete"] is None and callbacks["success"] is None:
        return "batch must have a success or complete callback"
    encoded: dict[str, bytes | None] = {}
    for name in ("success", "complete"):
        job = callbacks[name]
        if job is None:
            encoded[name] = None
            continue
        error = check_callback(job)
        if error is not None:
            return f"invalid {name} callback: {error}"
        encoded[name] = codec.encode(job)
    return BatchRequest(
        fields["parent_bid"] or "",
        fields["description"] or "",
        encoded["complete"],
        encoded["success"],
    )


def check_callback(job: Payload) -> str | None:
    """PUSH's checks on a callback job, with its defaults filled in (jid, args, queue);
    the PUSH error text or None."""
    custom = job.get("custom")
    if custom and "bid" in custom:
        return "a callback cannot be a member of a batch (custom.bid)"
    if not job.get("jid"):
        job["jid"] = new_jid()
    jid = job["jid"]
    if len(jid) < 8 and len(jid.encode("utf-8", "surrogatepass")) < 8:
        return "jobs must have a reasonable jid parameter"
    if not job.get("jobtype"):
        return "jobs must have a jobtype parameter"
    if job.get("args") is None:
        job["args"] = []
    if (job.get("reserve_for") or 0) > 86400:
        return "jobs cannot be reserved for more than one day"
    at = job.get("at")
    if at:
        try:
            parse_rfc3339(at)
        except ValueError as exc:
            return f"invalid timestamp for 'at': {go_quote(at)}: {exc}"
    if not job.get("queue"):
        job["queue"] = "default"
    queue = job["queue"]
    if not QUEUE_NAME_RE.match(queue):
        return f"cannot get {go_quote(queue)} queue: {BAD_QUEUE}"
    return None
