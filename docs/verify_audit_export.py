#!/usr/bin/env python3
"""Verify a signed modelcycle audit export without modelcycle: needs only `cryptography`.

    python3 verify_audit_export.py EXPORT.jsonl PUBLIC_KEY.pem [EXPORT.jsonl.dsse.json]

Checks the DSSE signature (ECDSA P-256, SHA-256) over the in-toto Statement, that the export's
sha256 is the signed one, every event's hash and link, and that the signed head ends the chain.
Exit 0 and "OK ..." when all holds, else exit 1 and "FAILED: <first reason>".
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pae(payload_type, payload):  # DSSE v1 Pre-Authentication Encoding
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def verify(export_path, key_path, sig_path):
    key_pem = open(key_path, "rb").read()
    key = serialization.load_pem_public_key(key_pem)
    envelope = json.load(open(sig_path, encoding="utf-8"))
    if envelope["payloadType"] != "application/vnd.in-toto+json":
        return "the envelope is not an in-toto DSSE envelope"
    payload = base64.b64decode(envelope["payload"])
    for sig in envelope["signatures"]:
        try:
            key.verify(base64.b64decode(sig["sig"]), pae(envelope["payloadType"], payload),
                       ec.ECDSA(hashes.SHA256()))
            break
        except InvalidSignature:
            continue
    else:
        return "the signature does not verify with this public key"
    statement = json.loads(payload)
    if statement["predicateType"] != "https://modelcycle.dev/audit-export/v1":
        return "the statement is not about a modelcycle audit export"
    data = open(export_path, "rb").read()
    if hashlib.sha256(data).hexdigest() != statement["subject"][0]["digest"]["sha256"]:
        return "the export is not the file that was signed (changed or truncated)"
    lines = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    if not lines or "format" not in lines[-1]:
        return "the export has no head line"
    prev_seq, prev_hash = 0, "0" * 64
    for line in lines[:-1]:
        e = line["event"]
        body = {k: e[k] for k in ("seq", "at", "actor", "action", "subject", "payload")}
        body["prev_hash"] = e["prev_hash"]
        if hashlib.sha256(canonical(body).encode("utf-8")).hexdigest() != e["hash"]:
            return f"event {e['seq']} altered: its content does not match its hash"
        if e["seq"] != prev_seq + 1 or e["prev_hash"] != prev_hash:
            return f"event {e['seq']} does not follow event {prev_seq} (missing or inserted)"
        prev_seq, prev_hash = e["seq"], e["hash"]
    head = statement["predicate"]["head"]
    if lines[-1]["head"] != head or head != {"seq": prev_seq, "hash": prev_hash}:
        return f"the signed head {head} is not the end of the chain (event {prev_seq})"
    signer = statement["predicate"]["signer"]
    print(f"OK: {prev_seq} events, head {prev_hash}, signed {statement['predicate']['signed_at']}"
          f" by {signer['actor']} with key {signer['key']} ({signer['fingerprint']})")
    return None


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    export, public_key = sys.argv[1], sys.argv[2]
    try:
        reason = verify(export, public_key, sys.argv[3] if len(sys.argv) == 4 else export + ".dsse.json")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        reason = f"unreadable input ({type(exc).__name__}: {exc})"
    if reason:
        print(f"FAILED: {reason}")
        sys.exit(1)
