"""Signed bundles, in the OpenSSF model-signing format (key-based, P-256).

The signature is a Sigstore bundle (a DSSE envelope over an in-toto Statement listing the
sha256 of every file of the bundle folder), written beside the folder as ``BUNDLE.sig`` so the
folder's own file list (``bundle.json``) stays as built. Anyone can check it without modelcycle::

    model_signing verify key BUNDLE --signature BUNDLE.sig --public_key KEY.pub

The signature covers every file, ``bundle.json`` included, and ``bundle.json`` names the sha256
of every other file, so a valid signature pins the whole bundle.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelcycle.audit.keys import SigningKey, fingerprint, load_public_key
from modelcycle.errors import IntegrityError, NotFound

__all__ = ["bundle_signature_path", "sign_bundle", "verify_bundle_signature"]


def bundle_signature_path(bundle: Path | str) -> Path:
    """``BUNDLE.sig`` beside the bundle folder."""
    root = Path(bundle).expanduser().resolve()
    return root.with_name(f"{root.name}.sig")


@contextlib.contextmanager
def _key_file(key: SigningKey) -> Iterator[Path]:
    """A path to the private key: its own file, or (a key from the environment) a 0600 file in
    a private temporary folder removed right after, since model-signing reads keys from paths."""
    if key.path is not None:
        yield key.path
        return
    from cryptography.hazmat.primitives import serialization

    with tempfile.TemporaryDirectory(prefix="modelcycle-key-") as folder:
        path = Path(folder) / "key.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(
                key.private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        yield path


def sign_bundle(bundle: Path | str, key: SigningKey, *, out: Path | str | None = None) -> Path:
    """Sign the bundle folder with ``key``; return the signature's path (``BUNDLE.sig``)."""
    from model_signing import hashing, signing

    root = Path(bundle).expanduser().resolve()
    if not root.is_dir():
        raise NotFound(f"no bundle folder {root}")
    target = Path(out) if out is not None else bundle_signature_path(root)
    with _key_file(key) as key_path:
        config = signing.Config()  # type: ignore[no-untyped-call]
        config.use_elliptic_key_signer(private_key=key_path)
        # Every file counts: no path is left out (model-signing skips .git* files by default).
        hashed = hashing.Config()  # type: ignore[no-untyped-call]
        config.set_hashing_config(hashed.set_ignored_paths(paths=[], ignore_git_paths=False))
        config.sign(root, target)
    return target


def verify_bundle_signature(
    bundle: Path | str, public_key: Path | str, *, signature: Path | str | None = None
) -> str:
    """Check the model-signing signature of ``bundle`` with the PEM public key at
    ``public_key``; return the key's fingerprint. IntegrityError names what failed."""
    from model_signing import verifying

    root = Path(bundle).expanduser().resolve()
    sig = Path(signature) if signature is not None else bundle_signature_path(root)
    key_path = Path(public_key)
    if not key_path.is_file():
        raise NotFound(f"no public key file {key_path}")
    # A malformed or non-P-256 key is bad input (exit 2), not a failed verification.
    pub = load_public_key(key_path.read_bytes(), field=str(key_path))
    if not root.is_dir():
        raise NotFound(f"no bundle folder {root}")
    if not sig.is_file():
        raise IntegrityError(f"bundle {root} is not signed (no {sig})")
    try:
        # model-signing prints warnings for old formats; keep them off our output.
        with contextlib.redirect_stdout(io.StringIO()):
            checker = verifying.Config()  # type: ignore[no-untyped-call]
            checker.use_elliptic_key_verifier(public_key=key_path).verify(root, sig)
    except Exception as exc:  # model-signing raises ValueError and others; all mean "no"
        raise IntegrityError(
            f"bundle {root}: signature {sig} does not verify: {_reason(exc)}"
        ) from None
    return fingerprint(pub)


def _reason(exc: Exception) -> str:
    """model-signing's message, with the file names kept and raw digests left out."""
    text = str(exc).strip()
    changed = re.findall(r"Hash mismatch for \\*'([^'\\]+)", text)
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        return f"{changed[0]} differs from the signed file{more}"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= 300 else first[:300] + "..."
