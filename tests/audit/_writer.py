"""A separate writer process for the concurrency and crash tests.

python _writer.py ROOT COUNT TAG          append COUNT notes
python _writer.py ROOT hang READY_FILE    open a write transaction, write, then hang before commit
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import insert

from modelcycle import Workspace
from modelcycle.audit import utc_timestamp
from modelcycle.store import tables


def main() -> None:
    root, what = sys.argv[1], sys.argv[2]
    ws = Workspace(root)
    if what == "hang":
        ready = Path(sys.argv[3])
        with ws.metadata.write(
            actor="crasher", action="artifact.stored", subject="artifact:" + "a" * 64
        ) as tx:
            tx.conn.execute(
                insert(tables.artifacts).values(
                    sha256="a" * 64,
                    size=1,
                    label="half",
                    created_at=utc_timestamp(),
                    created_by="crasher",
                )
            )
            ready.write_text("ready")
            time.sleep(600)  # killed with SIGKILL long before this ends
        return
    tag = sys.argv[3]
    for i in range(int(what)):
        ws.audit.note(f"{tag} {i}", subject=tag)
    ws.close()


if __name__ == "__main__":
    main()
