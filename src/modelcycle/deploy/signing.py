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
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from modelcycle.audit.keys import SigningKey, fingerprint, load_public_key
from modelcycle.errors import IntegrityError, InvalidInput, NotFound

if TYPE_CHECKING:
    from modelcycle.deploy.bundle import BundleInfo
    from modelcycle.store import MetadataStore
    from modelcycle.store.keys import Keys

__all__ = [
    "IMAGE_SIGNATURE",
    "SIGNER_LABEL",
    "SignedBundleGate",
    "bundle_signature_path",
    "deploy_settings",
    "kept_signature_path",
    "sign_and_keep",
    "sign_bundle",
    "signature_layer",
    "signer_fingerprint",
    "verify_bundle_signature",
]


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


# -- the container image ----------------------------------------------------------------------

# Where the image keeps the signature: beside the bundle (/opt/bundle), as BUNDLE.sig is beside
# the folder, so `model_signing verify key /opt/bundle --signature /opt/bundle.sig` works on
# the image's files.
IMAGE_SIGNATURE = "/opt/bundle.sig"
SIGNER_LABEL = "io.modelcycle.signer.fingerprint"


def signer_fingerprint(signature: Path | str) -> str:
    """The signer's key fingerprint a model-signing signature names (its key hint)."""
    path = Path(signature)
    try:
        hint = json.loads(path.read_bytes())["verificationMaterial"]["publicKey"]["hint"]
    except (OSError, ValueError, KeyError, TypeError):
        raise IntegrityError(f"{path} is not a model-signing key signature") from None
    if not isinstance(hint, str) or not re.fullmatch(r"[0-9a-f]{64}", hint):
        raise IntegrityError(f"{path}: the key hint is not a sha256 fingerprint")
    return hint


def signature_layer(bundle: BundleInfo, context: Path, image: str) -> tuple[Path, str] | None:
    """When the bundle's signature lies beside it (deploy put it there after verifying it,
    under ``[deploy] require_signed``): write into ``context`` the signature and a Containerfile
    that adds it to ``image`` beside the bundle and labels the image with the signer's
    fingerprint; return (that Containerfile, the fingerprint). None for an unsigned bundle.
    A second, one-layer build: the bundle's own Containerfile cannot name a file outside the
    folder it signs."""
    sig = bundle_signature_path(bundle.path)
    if not sig.is_file():
        return None
    signer = signer_fingerprint(sig)
    shutil.copyfile(sig, context / "bundle.sig")
    labels = {
        SIGNER_LABEL: signer,
        "io.modelcycle.signature": IMAGE_SIGNATURE,
        "io.modelcycle.bundle.sha256": bundle.digest,
    }
    label_text = " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    containerfile = context / "Containerfile.signature"
    containerfile.write_text(
        f"FROM {image}\nCOPY bundle.sig {IMAGE_SIGNATURE}\nLABEL {label_text}\n",
        encoding="utf-8",
    )
    return containerfile, signer


# -- [deploy] require_signed ------------------------------------------------------------------


def kept_signature_path(state_dir: Path, digest: str) -> Path:
    """Where the workspace keeps the signature of the bundle with ``digest`` (bundles are
    byte-reproducible, so the bundle deploy rebuilds has the digest ``bundle --sign`` signed)."""
    return Path(state_dir) / "signatures" / f"{digest}.sig"


def sign_and_keep(info: BundleInfo, keys: Keys, key: str | None, state_dir: Path) -> Path:
    """Sign the bundle ``info`` (``BUNDLE.sig``), keep a copy for deploy's check, audit it."""
    signing_key = keys.load(key)
    sig = sign_bundle(info.path, signing_key)
    kept = kept_signature_path(state_dir, info.digest)
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sig, kept)
    keys.record_use(
        signing_key, purpose="bundle", subject=info.ref, sha256=info.digest, signature=str(sig)
    )
    return sig


def deploy_settings(config: dict[str, Any]) -> tuple[bool, list[str] | None]:
    """``[deploy] require_signed`` (bool) and ``trusted_keys`` (key names; None: every key)."""
    section = config.get("deploy", {})
    if not isinstance(section, dict):
        raise InvalidInput("must be a table", field="deploy (modelcycle.toml)")
    required = section.get("require_signed", False)
    if not isinstance(required, bool):
        raise InvalidInput("must be true or false", field="deploy.require_signed (modelcycle.toml)")
    trusted = section.get("trusted_keys")
    if trusted is not None and (
        not isinstance(trusted, list) or not all(isinstance(k, str) for k in trusted)
    ):
        raise InvalidInput(
            "must be a list of key names", field="deploy.trusted_keys (modelcycle.toml)"
        )
    return required, trusted


class SignedBundleGate:
    """Called by deploy on the bundle it just built, before anything starts: the bundle must
    carry a signature (kept by ``bundle --sign``) that one of the trusted keys verifies over
    the bundle's files. Otherwise the deployment is refused: IntegrityError (exit 5) and a
    ``deployment.refused`` audit event naming the reason; the built bundle is removed."""

    def __init__(
        self,
        keys: Keys,
        meta: MetadataStore,
        actor: str,
        state_dir: Path,
        trusted: list[str] | None = None,
    ) -> None:
        self._keys = keys
        self._meta = meta
        self._actor = actor
        self._state_dir = Path(state_dir)
        self._trusted = trusted

    def __call__(self, info: BundleInfo, endpoint: str) -> None:
        kept = kept_signature_path(self._state_dir, info.digest)
        if not kept.is_file():
            self._refuse(
                info, endpoint,
                f"bundle {info.digest[:16]}... of {info.ref} is not signed; sign it with "
                f"`modelcycle bundle {info.ref} --out DIR --sign` ([deploy] require_signed)",
            )  # fmt: skip
        names = self._trusted if self._trusted is not None else self._keys.ring.names()
        reasons = []
        with tempfile.TemporaryDirectory(prefix="modelcycle-trust-") as folder:
            for name in names:
                public = Path(folder) / f"{name}.pub"
                try:
                    public.write_bytes(self._keys.public_pem(name))
                    verify_bundle_signature(info.path, public, signature=kept)
                except (IntegrityError, InvalidInput, NotFound) as exc:
                    reasons.append(f"{name}: {exc.message}")
                    continue
                # The signature travels with the bundle it covers (BUNDLE.sig beside it).
                shutil.copyfile(kept, bundle_signature_path(info.path))
                return
        self._refuse(
            info, endpoint,
            f"the signature of {info.ref}'s bundle does not verify with a trusted key ("
            + ("; ".join(reasons) or "no trusted key")
            + ")",
        )  # fmt: skip

    def _refuse(self, info: BundleInfo, endpoint: str, reason: str) -> NoReturn:
        shutil.rmtree(info.path, ignore_errors=True)  # nothing of the attempt is left to start
        with self._meta.write(
            actor=self._actor,
            action="deployment.refused",
            subject=f"model:{info.ref}",
            payload={"endpoint": endpoint, "bundle_sha256": info.digest, "reason": reason},
        ):
            pass
        raise IntegrityError(f"deployment refused: {reason}")
