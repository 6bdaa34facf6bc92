"""DSSE envelopes over in-toto Statements: detached, offline-checkable signatures of evidence.

Follows the DSSE v1 protocol (github.com/secure-systems-lab/dsse, ``protocol.md``) exactly:
the signature is over ``PAE(payloadType, payload)``::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where ``LEN`` is the ASCII decimal byte length without leading zeros and SP one space; the
envelope is ``{"payload": b64(body), "payloadType": type, "signatures": [{"keyid", "sig"}]}``
with standard base64. The body is an in-toto Statement v1 (``_type``, ``subject`` with sha256
digests, ``predicateType``, ``predicate``); signatures are ECDSA P-256 over SHA-256, DER
encoded, the ``keyid`` the key's fingerprint (:func:`modelcycle.audit.keys.fingerprint`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from modelcycle.audit.keys import SigningKey, fingerprint

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "EnvelopeError",
    "open_envelope",
    "pae",
    "sign_statement",
    "statement",
]

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


class EnvelopeError(Exception):
    """Why an envelope does not verify (the caller turns it into its own report)."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def statement(
    subjects: list[tuple[str, str]], predicate_type: str, predicate: dict[str, Any]
) -> dict[str, Any]:
    """An in-toto Statement v1 about ``subjects`` (name, sha256 hex)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def sign_statement(body: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """The DSSE envelope of ``body`` signed by ``key``."""
    payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    sig = key.private_key.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "signatures": [{"keyid": key.fingerprint, "sig": base64.b64encode(sig).decode("ascii")}],
    }


def open_envelope(
    envelope: Any, public_key: ec.EllipticCurvePublicKey, predicate_type: str
) -> dict[str, Any]:
    """Check ``envelope`` against ``public_key``; return its Statement, or raise EnvelopeError
    naming the reason (malformed, signed by another key, bad signature, other statement)."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signatures"), list):
        raise EnvelopeError("the signature file is not a DSSE envelope")
    if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        raise EnvelopeError(f"the envelope's payloadType is not {IN_TOTO_PAYLOAD_TYPE}")
    try:
        payload = base64.b64decode(str(envelope["payload"]), validate=True)
    except (KeyError, binascii.Error):
        raise EnvelopeError("the envelope's payload is not base64") from None
    wanted = fingerprint(public_key)
    signatures = [s for s in envelope["signatures"] if isinstance(s, dict)]
    if not signatures:
        raise EnvelopeError("the envelope carries no signature")
    keyids = [str(s.get("keyid", "")) for s in signatures]
    if wanted not in keyids and all(keyids):
        raise EnvelopeError(
            f"signed by key {keyids[0][:16]}..., not by the given public key {wanted[:16]}..."
        )
    message = pae(IN_TOTO_PAYLOAD_TYPE, payload)
    for sig in signatures:
        if sig.get("keyid") not in ("", None, wanted):
            continue
        try:
            public_key.verify(
                base64.b64decode(str(sig.get("sig", "")), validate=True),
                message,
                ec.ECDSA(hashes.SHA256()),
            )
            break
        except (InvalidSignature, binascii.Error, ValueError):
            continue
    else:
        raise EnvelopeError("the signature does not verify with the given public key")
    try:
        body = json.loads(payload)
    except ValueError:
        raise EnvelopeError("the signed payload is not JSON") from None
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
        raise EnvelopeError(f"the signed payload is not an in-toto Statement ({STATEMENT_TYPE})")
    if body.get("predicateType") != predicate_type:
        raise EnvelopeError(
            f"the statement's predicateType is {body.get('predicateType')!r}, "
            f"expected {predicate_type!r}"
        )
    return body
