"""The tamper-evident audit trail: hash chain, verification, head file, export format.

Pure pieces with no database: the store appends what :func:`next_event` builds, in the same
transaction as the change it records, and reads events back for :func:`verify_chain`.
"""

from modelcycle.audit.chain import (
    GENESIS,
    canonical_json,
    next_event,
    parse_since,
    utc_timestamp,
)
from modelcycle.audit.compromise import COMPROMISED_KEY, CompromiseFile, refusal
from modelcycle.audit.export import read_export, write_export
from modelcycle.audit.head_file import HeadFile
from modelcycle.audit.verify import ACK_ACTION, Anchor, ChainProblem, VerifyReport, verify_chain

__all__ = [
    "ACK_ACTION",
    "COMPROMISED_KEY",
    "GENESIS",
    "Anchor",
    "ChainProblem",
    "CompromiseFile",
    "HeadFile",
    "VerifyReport",
    "canonical_json",
    "next_event",
    "parse_since",
    "read_export",
    "refusal",
    "utc_timestamp",
    "verify_chain",
    "write_export",
]
