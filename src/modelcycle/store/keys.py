"""``ws.keys``: the workspace's signing keys, with their creation and every use audited.

The files live in :class:`~modelcycle.audit.keys.KeyRing`; this facade adds the audit events
(``key.created``, ``key.used``), which record a key's name and public fingerprint, never the
private key. No database table: keys are files (or secrets named in ``modelcycle.toml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelcycle.audit.keys import ALGORITHM, KeyEntry, KeyRing, SigningKey
from modelcycle.audit.signed_export import sign_export
from modelcycle.entities import AuditEvent
from modelcycle.store.metadata import MetadataStore

__all__ = ["Keys"]


class Keys:
    """Create, list and use signing keys; every creation and use leaves an audit event."""

    def __init__(self, meta: MetadataStore, ring: KeyRing, actor: str, *, root: Path) -> None:
        self._meta = meta
        self.ring = ring
        self._actor = actor
        self._root = Path(root)

    def __repr__(self) -> str:
        return f"Keys({str(self.ring.keys_dir)!r})"

    @property
    def default_name(self) -> str:
        return self.ring.default_name

    def create(self, name: str | None = None) -> SigningKey:
        """A new P-256 key pair in the workspace, audited as ``key.created``."""
        key = self.ring.create(name)
        try:
            with self._meta.write(
                actor=self._actor,
                action="key.created",
                subject=f"key:{key.name}",
                payload={"name": key.name, "fingerprint": key.fingerprint, "algorithm": ALGORITHM},
            ):
                pass
        except BaseException:
            # An unaudited key must not exist: remove what was just written.
            assert key.path is not None
            key.path.unlink(missing_ok=True)
            key.path.with_suffix(".pub").unlink(missing_ok=True)
            raise
        return key

    def list(self) -> list[KeyEntry]:
        return self.ring.list()

    def public_pem(self, name: str) -> bytes:
        return self.ring.public_pem(name)

    def load(self, name: str | None = None) -> SigningKey:
        """The private key to sign with (default: ``[signing] key`` or ``default``)."""
        return self.ring.load(name)

    def record_use(
        self, key: SigningKey, *, purpose: str, subject: str, sha256: str, **details: Any
    ) -> AuditEvent:
        """Audit one signature made with ``key`` (``key.used``: what was signed, its digest)."""
        with self._meta.write(
            actor=self._actor,
            action="key.used",
            subject=f"key:{key.name}",
            payload={
                "name": key.name,
                "fingerprint": key.fingerprint,
                "purpose": purpose,
                "signed": subject,
                "sha256": sha256,
                **details,
            },
        ) as tx:
            pass
        return tx.events[0]

    def sign_export(
        self, export: Path | str, key: str | None = None, *, out: Path | str | None = None
    ) -> tuple[Path, dict[str, Any]]:
        """Sign an audit export (see :func:`modelcycle.audit.signed_export.sign_export`)."""
        signing_key = self.load(key)
        path, body = sign_export(
            export, signing_key, actor=self._actor, root=str(self._root), out=out
        )
        predicate = body["predicate"]
        self.record_use(
            signing_key,
            purpose="audit-export",
            subject=str(Path(export).name),
            sha256=body["subject"][0]["digest"]["sha256"],
            head_seq=predicate["head"]["seq"],
            signature=str(path),
        )
        return path, body
