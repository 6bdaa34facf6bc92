"""The tamper-evident audit trail: hash chain, verification, head file, export format.

Pure pieces with no database: the store appends what :func:`next_event` builds, in the same
transaction as the change it records, and reads events back for :func:`verify_chain`.
"""

from modelcycle.audit.chain import GENESIS, canonical_json, next_event, utc_timestamp
from modelcycle.audit.export import read_export, write_export
from modelcycle.audit.head_file import HeadFile
from modelcycle.audit.verify import Anchor, ChainProblem, VerifyReport, verify_chain

__all__ = [
    "GENESIS",
    "Anchor",
    "ChainProblem",
    "HeadFile",
    "VerifyReport",
    "canonical_json",
    "next_event",
    "read_export",
    "utc_timestamp",
    "verify_chain",
    "write_export",
]
