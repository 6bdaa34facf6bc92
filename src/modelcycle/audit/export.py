"""The export format: JSON lines, one event a line, then one line with the chain head.

An export verifies offline with nothing but this file: ``modelcycle audit verify --file F``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from modelcycle.audit.chain import canonical_json
from modelcycle.audit.verify import Anchor
from modelcycle.entities import AuditEvent, ChainHead
from modelcycle.errors import InvalidInput

__all__ = ["read_export", "write_export"]

_FORMAT = "modelcycle-audit-export/1"


def write_export(events: Iterable[AuditEvent], head: ChainHead | None, out: IO[str]) -> int:
    """Write ``events`` and the head line; return the number of events written."""
    count = 0
    for event in events:
        out.write(canonical_json({"event": event.as_dict()}) + "\n")
        count += 1
    head_data = None if head is None else {"seq": head.seq, "hash": head.hash}
    out.write(canonical_json({"format": _FORMAT, "head": head_data, "events": count}) + "\n")
    return count


def read_export(path: Path) -> tuple[list[AuditEvent], list[Anchor]]:
    """Parse an export into events and the head it closes with (as an exact anchor)."""
    events: list[AuditEvent] = []
    anchors: list[Anchor] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(_lines(fh), start=1):
            try:
                data = json.loads(line)
                if "event" in data:
                    events.append(AuditEvent(**data["event"]))
                elif data.get("format") == _FORMAT:
                    if data["head"] is not None:
                        head = ChainHead(seq=int(data["head"]["seq"]), hash=data["head"]["hash"])
                        anchors.append(
                            Anchor(source="the export's head line", head=head, exact=True)
                        )
                else:
                    raise ValueError("neither an event nor a head line")
            except (ValueError, TypeError, KeyError) as exc:
                raise InvalidInput(
                    f"line {number} is not a modelcycle audit export line ({exc})", field=str(path)
                ) from exc
    if not anchors:
        raise InvalidInput("has no head line: the export is incomplete", field=str(path))
    return events, anchors


def _lines(fh: IO[str]) -> Iterator[str]:
    for line in fh:
        if line.strip():
            yield line
