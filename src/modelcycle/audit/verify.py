"""Checking a chain: every event's hash, every link, no gaps, and the anchors kept outside it.

The walk does not stop at the first problem: it records each one (up to a limit) and goes on
from the event as stored, so that one break does not hide a later one. A break an operator has
acknowledged (an ``audit.acknowledged`` event later in the chain that lists its fingerprint and
itself verifies) is reported as acknowledged; any other break fails the verification. The
fingerprint covers exactly what was found (the damaged event as stored, or where the gap is),
so tampering with an acknowledged event again, or anywhere else, is a new break (decision 0005).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from modelcycle.audit.chain import GENESIS, canonical_json, event_hash
from modelcycle.entities import AuditEvent, ChainHead

__all__ = ["ACK_ACTION", "Anchor", "ChainProblem", "VerifyReport", "verify_chain"]

# The event that records an operator's acknowledgement of a broken chain.
ACK_ACTION = "audit.acknowledged"
_MAX_PROBLEMS = 1000


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
    """Something found wrong: which event, what kind of damage, and how it shows."""

    seq: int
    kind: str  # "altered", "inserted", "missing", "truncated"
    detail: str
    # What exactly was found (the damaged event as stored, or where the gap starts): an
    # acknowledgement lists these, and covers this break and nothing else.
    fingerprint: str = ""

    def __str__(self) -> str:
        return f"event {self.seq} {self.kind}: {self.detail}"

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "detail": self.detail,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a verification.

    ``problem`` is the first break nobody acknowledged (None: the chain verifies), ``head`` the
    last event before it (or the chain's end), ``problems`` every break found and
    ``acknowledged`` those an ``audit.acknowledged`` event covers.
    """

    events: int
    head: ChainHead
    problem: ChainProblem | None
    problems: tuple[ChainProblem, ...] = ()
    acknowledged: tuple[ChainProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def unacknowledged(self) -> tuple[ChainProblem, ...]:
        return tuple(p for p in self.problems if p not in self.acknowledged)


def event_fingerprint(event: AuditEvent) -> str:
    """sha256 of the event exactly as stored, its stored hash included."""
    return hashlib.sha256(canonical_json(event.as_dict()).encode("utf-8")).hexdigest()


def verify_chain(events: Iterable[AuditEvent], anchors: Iterable[Anchor] = ()) -> VerifyReport:
    """Walk ``events`` in sequence order, recording every problem.

    An anchor is a lower bound: the chain must reach its sequence number with exactly its
    hash. A chain that ends before an anchor was truncated; one that carries a different hash
    at the anchor's position was rewritten.
    """
    head = GENESIS
    count = 0
    seen: dict[int, str] = {}
    anchor_list = sorted(anchors, key=lambda a: a.head.seq)
    wanted = {a.head.seq for a in anchor_list}
    problems: list[ChainProblem] = []
    before: dict[ChainProblem, ChainHead] = {}  # the last event walked before each problem
    acks: list[tuple[int, set[str]]] = []

    def found(problem: ChainProblem, last: ChainHead) -> None:
        if len(problems) < _MAX_PROBLEMS:
            problems.append(problem)
            before[problem] = last

    for event in events:
        count += 1
        if event.seq <= head.seq:
            found(
                ChainProblem(
                    event.seq, "inserted", "sequence number repeats", event_fingerprint(event)
                ),
                head,
            )
            continue  # keep walking from the event it repeats
        linked = event.seq == head.seq + 1
        if not linked:
            found(
                ChainProblem(
                    head.seq + 1,
                    "missing",
                    f"the chain jumps from event {head.seq} to event {event.seq}",
                    f"gap:{head.seq + 1}",
                ),
                head,
            )
        bad: ChainProblem | None = None
        if event_hash(event) != event.hash:
            bad = ChainProblem(
                event.seq,
                "altered",
                "its content does not match its stored hash",
                event_fingerprint(event),
            )
        elif linked and event.prev_hash != head.hash:
            bad = ChainProblem(
                event.seq,
                "inserted",
                f"it does not link to event {head.seq} (a forged or re-hashed event)",
                event_fingerprint(event),
            )
        if bad is not None:
            found(bad, head)
        elif event.action == ACK_ACTION:
            breaks = event.payload.get("breaks", [])
            acks.append(
                (
                    event.seq,
                    {str(b.get("fingerprint")) for b in breaks if isinstance(b, dict)}
                    if isinstance(breaks, list)
                    else set(),
                )
            )
        # Go on from the event as stored: the next one links to its stored hash.
        head = ChainHead(seq=event.seq, hash=event.hash)
        if event.seq in wanted:
            seen[event.seq] = event.hash
    for anchor in anchor_list:
        if anchor.head.seq > head.seq:
            found(
                ChainProblem(
                    head.seq + 1,
                    "truncated",
                    f"{anchor.source} records event {anchor.head.seq} but the log ends at "
                    f"event {head.seq}",
                    f"gap:{head.seq + 1}",
                ),
                head,
            )
        elif anchor.exact and head.seq > anchor.head.seq:
            found(
                ChainProblem(
                    anchor.head.seq + 1,
                    "inserted",
                    f"{anchor.source} says the log ends at event {anchor.head.seq}",
                    f"past-head:{anchor.head.seq + 1}:{head.hash}",
                ),
                head,
            )
        elif seen.get(anchor.head.seq, anchor.head.hash) != anchor.head.hash:
            found(
                ChainProblem(
                    anchor.head.seq,
                    "altered",
                    f"its hash differs from the one {anchor.source} recorded",
                    f"anchor:{anchor.head.seq}:{seen[anchor.head.seq]}",
                ),
                head,
            )
    acknowledged = tuple(
        p for p in problems if any(seq > p.seq and p.fingerprint in fps for seq, fps in acks)
    )
    open_problems = [p for p in problems if p not in acknowledged]
    first = min(open_problems, key=lambda p: p.seq) if open_problems else None
    return VerifyReport(
        events=count,
        head=head if first is None else before[first],
        problem=first,
        problems=tuple(problems),
        acknowledged=acknowledged,
    )
