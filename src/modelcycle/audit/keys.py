"""Signing keys: one NIST P-256 (secp256r1) key pair type for audit exports and bundles alike.

P-256 is what the OpenSSF ``model-signing`` package's key-based method accepts (it takes
secp256r1/384r1/521r1 and hashes with SHA-256 for P-256), and what ``cryptography`` signs DSSE
envelopes with, so one key signs both kinds of evidence.

Where a key lives:

- in the workspace: ``.modelcycle/keys/NAME.pem`` (PKCS#8, mode 0600, folder 0700) beside
  ``NAME.pub`` (the public key, SubjectPublicKeyInfo PEM), made by ``modelcycle keys create``;
- or outside it, named in ``modelcycle.toml`` so production keeps it in a secret store::

      [signing]
      key = "release"                 # the key --sign uses when no --key is given
      [signing.keys.release]
      private_key_file = "/run/secrets/modelcycle-signing.pem"   # or:
      # private_key_env = "MODELCYCLE_SIGNING_KEY"              (the PEM text itself)

A private key file readable by group or others is refused. The fingerprint (the key's public
identity in audit events, DSSE ``keyid`` and listings) is the sha256 of the public key's PEM
text: the same value ``model-signing`` writes into a bundle signature as its key hint.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.names import validate_name

__all__ = [
    "ALGORITHM",
    "DEFAULT_KEY",
    "KeyEntry",
    "KeyRing",
    "SigningKey",
    "fingerprint",
    "load_public_key",
]

ALGORITHM = "ecdsa-p256-sha256"
DEFAULT_KEY = "default"
_SECTION = "signing"


def fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """sha256 (hex) of the public key's SubjectPublicKeyInfo PEM text."""
    return hashlib.sha256(_public_pem(public_key)).hexdigest()


def _public_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(data: bytes, *, field: str = "public key") -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM; InvalidInput (naming ``field``) for anything else."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"is not a PEM public key ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})",
            field=field,
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidInput("is not a NIST P-256 (secp256r1) public key", field=field)
    return key


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key pair ready to sign. ``source`` says where the private key came from (a path or
    ``env:VAR``), never what it is."""

    name: str
    private_key: ec.EllipticCurvePrivateKey
    source: str
    path: Path | None  # the private key file, when there is one (model-signing reads a path)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def public_pem(self) -> bytes:
        return _public_pem(self.public_key)

    def __repr__(self) -> str:  # never show the private key, even in a traceback
        return f"SigningKey(name={self.name!r}, fingerprint={self.fingerprint[:16]}...)"


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key as listed: name, fingerprint, where the private key is kept."""

    name: str
    fingerprint: str
    source: str
    default: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "algorithm": ALGORITHM,
            "source": self.source,
            "default": self.default,
        }


class KeyRing:
    """The signing keys of one workspace: files under ``keys_dir`` plus those configured in
    ``modelcycle.toml``. Reads and writes files only; callers audit creation and use."""

    def __init__(
        self,
        keys_dir: Path,
        config: Mapping[str, Any] | None = None,
        *,
        root: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.keys_dir = Path(keys_dir)
        self._root = Path(root) if root is not None else self.keys_dir.parent.parent
        self._environ = os.environ if environ is None else environ
        section = (config or {}).get(_SECTION, {})
        if not isinstance(section, dict):
            raise InvalidInput("must be a table", field=f"{_SECTION} (modelcycle.toml)")
        self.default_name = str(section.get("key", DEFAULT_KEY))
        configured = section.get("keys", {})
        if not isinstance(configured, dict):
            raise InvalidInput(
                "must be a table of keys", field=f"{_SECTION}.keys (modelcycle.toml)"
            )
        self._configured: dict[str, dict[str, Any]] = {}
        for name, entry in configured.items():
            where = f"{_SECTION}.keys.{name} (modelcycle.toml)"
            if not isinstance(entry, dict) or (
                ("private_key_file" in entry) == ("private_key_env" in entry)
            ):
                raise InvalidInput(
                    "must set exactly one of private_key_file or private_key_env", field=where
                )
            unknown = set(entry) - {"private_key_file", "private_key_env"}
            if unknown:
                raise InvalidInput(f"unknown setting(s) {sorted(unknown)}", field=where)
            self._configured[validate_name(str(name), field=where)] = dict(entry)

    # -- creating ---------------------------------------------------------------------------

    def create(self, name: str | None = None) -> SigningKey:
        """Make a new P-256 key pair in the workspace (private key mode 0600)."""
        name = validate_name(name or self.default_name, field="name")
        if name in self._configured:
            raise Conflict(f"key {name!r} is configured in modelcycle.toml; choose another name")
        private_path, public_path = self._paths(name)
        if private_path.exists() or public_path.exists():
            raise Conflict(f"key {name!r} exists already ({private_path})")
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        self.keys_dir.chmod(0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # O_EXCL + mode at creation: the private key is never readable by others, not even
        # for an instant, and two concurrent creates cannot both win.
        try:
            fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise Conflict(f"key {name!r} exists already ({private_path})") from None
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        public_path.write_bytes(_public_pem(key.public_key()))
        public_path.chmod(0o644)
        return SigningKey(name, key, str(private_path), private_path)

    # -- reading ----------------------------------------------------------------------------

    def names(self) -> list[str]:
        local = {p.stem for p in self.keys_dir.glob("*.pem")} if self.keys_dir.is_dir() else set()
        return sorted(local | set(self._configured))

    def list(self) -> list[KeyEntry]:
        """Every key with its fingerprint (public parts only: nothing secret is read out)."""
        entries = []
        for name in self.names():
            try:
                fp = fingerprint(self.public_key(name))
            except (InvalidInput, NotFound) as exc:
                fp = f"unavailable: {exc.message}"
            entries.append(KeyEntry(name, fp, self._source(name), name == self.default_name))
        return entries

    def public_key(self, name: str) -> ec.EllipticCurvePublicKey:
        """The public half of ``name`` (from ``NAME.pub``, else derived from the private key)."""
        name = validate_name(name, field="key")
        public_path = self._paths(name)[1]
        if name not in self._configured and public_path.is_file():
            return load_public_key(public_path.read_bytes(), field=str(public_path))
        return self.load(name).public_key

    def public_pem(self, name: str) -> bytes:
        return _public_pem(self.public_key(name))

    def load(self, name: str | None = None) -> SigningKey:
        """The private key ``name`` (default: ``[signing] key``, else ``default``), checked."""
        name = validate_name(name or self.default_name, field="key")
        entry = self._configured.get(name)
        if entry is not None and "private_key_env" in entry:
            var = str(entry["private_key_env"])
            text = self._environ.get(var)
            if not text:
                raise NotFound(
                    f"key {name!r}: environment variable {var} (named in modelcycle.toml) is "
                    "not set"
                )
            return SigningKey(
                name, _private_from_pem(text.encode(), f"env:{var}"), f"env:{var}", None
            )
        if entry is not None:
            path = Path(str(entry["private_key_file"])).expanduser()
            path = path if path.is_absolute() else self._root / path
        else:
            path = self._paths(name)[0]
        if not path.is_file():
            hint = (
                ""
                if entry is not None
                else f"; create it with `modelcycle keys create --name {name}`"
            )
            raise NotFound(f"no signing key {name!r} ({path} does not exist){hint}")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise InvalidInput(
                f"is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`",
                field=f"key {name!r}",
            )
        return SigningKey(name, _private_from_pem(path.read_bytes(), str(path)), str(path), path)

    def _source(self, name: str) -> str:
        entry = self._configured.get(name)
        if entry is None:
            return str(self._paths(name)[0])
        if "private_key_env" in entry:
            return f"env:{entry['private_key_env']}"
        return str(entry["private_key_file"])

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.keys_dir / f"{name}.pem", self.keys_dir / f"{name}.pub"


def _private_from_pem(data: bytes, where: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        # Never echo the key material: only where it came from and why it was refused.
        reason = "it is encrypted" if "encrypted" in str(exc).lower() else "not a PEM private key"
        raise InvalidInput(f"cannot be read as a private key ({reason})", field=where) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InvalidInput("is not a NIST P-256 (secp256r1) private key", field=where)
    return key
