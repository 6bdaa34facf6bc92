"""Checking a chain: every event's hash, every link, no gaps, and the anchors kept outside it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from modelcycle.audit.chain import GENESIS, event_hash
from modelcycle.entities import AuditEvent, ChainHead

__all__ = ["Anchor", "ChainProblem", "VerifyReport", "verify_chain"]


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head recorded somewhere other than the events table (head row, head file, export)."""

    source: str
    head: ChainHead
    # An exact anchor is the true end of the chain (the database's head row): events past it
    # were added behind modelcycle's back. Other anchors are lower bounds (written after commit).
    exact: bool = False


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first thing found wrong: which event, what kind of damage, and how it shows."""

    seq: int
    kind: str  # "altered", "inserted", "missing", "truncated"
    detail: str

    def __str__(self) -> str:
        return f"event {self.seq} {self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a verification."""

    events: int
    head: ChainHead
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(events: Iterable[AuditEvent], anchors: Iterable[Anchor] = ()) -> VerifyReport:
    """Walk ``events`` in sequence order and stop at the first problem.

    An anchor is a lower bound: the chain must reach its sequence number with exactly its
    hash. A chain that ends before an anchor was truncated; one that carries a different hash
    at the anchor's position was rewritten.
    """
    head = GENESIS
    count = 0
    seen: dict[int, str] = {}
    anchor_list = sorted(anchors, key=lambda a: a.head.seq)
    wanted = {a.head.seq for a in anchor_list}
    for event in events:
        count += 1
        if event.seq != head.seq + 1:
            if event.seq <= head.seq:
                return _fail(count, head, event.seq, "inserted", "sequence number repeats")
            return _fail(
                count,
                head,
                head.seq + 1,
                "missing",
                f"the chain jumps from event {head.seq} to event {event.seq}",
            )
        recomputed = event_hash(event)
        if recomputed != event.hash:
            return _fail(
                count, head, event.seq, "altered", "its content does not match its stored hash"
            )
        if event.prev_hash != head.hash:
            return _fail(
                count,
                head,
                event.seq,
                "inserted",
                f"it does not link to event {head.seq} (a forged or re-hashed event)",
            )
        head = ChainHead(seq=event.seq, hash=event.hash)
        if event.seq in wanted:
            seen[event.seq] = event.hash
    for anchor in anchor_list:
        if anchor.head.seq > head.seq:
            return _fail(
                count,
                head,
                head.seq + 1,
                "truncated",
                f"{anchor.source} records event {anchor.head.seq} but the log ends at "
                f"event {head.seq}",
            )
        if anchor.exact and head.seq > anchor.head.seq:
            return _fail(
                count,
                head,
                anchor.head.seq + 1,
                "inserted",
                f"{anchor.source} says the log ends at event {anchor.head.seq}",
            )
        if seen.get(anchor.head.seq, anchor.head.hash) != anchor.head.hash:
            return _fail(
                count,
                head,
                anchor.head.seq,
                "altered",
                f"its hash differs from the one {anchor.source} recorded",
            )
    return VerifyReport(events=count, head=head, problem=None)


def _fail(count: int, head: ChainHead, seq: int, kind: str, detail: str) -> VerifyReport:
    return VerifyReport(events=count, head=head, problem=ChainProblem(seq, kind, detail))
