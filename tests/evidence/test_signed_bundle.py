"""Signed bundles: modelcycle signs in the OpenSSF model-signing format and model-signing's
own CLI verifies it, with no modelcycle involved; a flipped byte or another key fails. Under
[deploy] require_signed, deploy refuses an unsigned or altered bundle (exit 5, audited)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.deploy.signing import (
    bundle_signature_path,
    kept_signature_path,
    sign_and_keep,
    verify_bundle_signature,
)
from modelcycle.errors import IntegrityError, InvalidInput

MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


@pytest.fixture(scope="module")
def signed_bundle(ews: Workspace, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bundle folder, public key PEM file): built and signed by the CLI."""
    folder = tmp_path_factory.mktemp("bundle")
    out = folder / "credit-1"
    proc = run_cli("bundle", "credit/1", "--out", str(out), "--sign", cwd=ews.root, check=True)
    assert "model_signing verify key" in proc.stdout
    public = folder / "default.pub"
    public.write_bytes(ews.keys.public_pem("default"))
    return out, public


def _model_signing_verify(bundle: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MODEL_SIGNING), "verify", "key", str(bundle),
         "--signature", str(bundle_signature_path(bundle)), "--public_key", str(public)],
        capture_output=True, text=True, timeout=120, cwd=bundle.parent,
    )  # fmt: skip


def test_model_signing_cli_verifies_a_modelcycle_bundle(
    ews: Workspace, signed_bundle: tuple[Path, Path]
) -> None:
    bundle, public = signed_bundle
    proc = _model_signing_verify(bundle, public)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Verification succeeded" in proc.stdout
    assert verify_bundle_signature(bundle, public) == ews.keys.load().fingerprint
    used = [e for e in ews.audit.events() if e.action == "key.used"]
    assert used[-1].payload["purpose"] == "bundle"
    assert used[-1].payload["signed"] == "credit/1"


def test_a_flipped_byte_fails_both_verifiers(
    signed_bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle, public = signed_bundle
    copy = tmp_path / "credit-1"
    subprocess.run(["cp", "-a", str(bundle), str(copy)], check=True)
    subprocess.run(["cp", str(bundle_signature_path(bundle)), str(tmp_path)], check=True)
    model = copy / "model" / "model.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    proc = _model_signing_verify(copy, public)
    assert proc.returncode == 1
    assert "model/model.skops" in proc.stderr
    with pytest.raises(IntegrityError, match=r"model/model\.skops differs from the signed file"):
        verify_bundle_signature(copy, public)


def test_another_key_and_a_missing_signature_fail_from_the_cli(
    ews: Workspace, signed_bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle, _ = signed_bundle
    ews.keys.create("stranger")
    stranger = tmp_path / "stranger.pub"
    stranger.write_bytes(ews.keys.public_pem("stranger"))
    proc = run_cli("bundle", "verify", str(bundle), "--public-key", str(stranger), cwd=ews.root)
    assert proc.returncode == 5
    assert "Key mismatch" in proc.stderr
    unsigned = tmp_path / "unsigned"
    unsigned.mkdir()
    with pytest.raises(IntegrityError, match="is not signed"):
        verify_bundle_signature(unsigned, stranger)
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")
    with pytest.raises(InvalidInput, match="is not a PEM public key"):
        verify_bundle_signature(bundle, bad)


# -- [deploy] require_signed (last: it changes the module's workspace config) --------------


@pytest.fixture(scope="module")
def strict(ews: Workspace) -> Workspace:
    config = ews.root / "modelcycle.toml"
    config.write_text(config.read_text() + "\n[deploy]\nrequire_signed = true\n")
    return Workspace(ews.root)


def _refusals(ws: Workspace) -> list[dict]:  # type: ignore[type-arg]
    return [e.payload for e in ws.audit.events() if e.action == "deployment.refused"]


def test_deploy_refuses_an_unsigned_bundle(strict: Workspace) -> None:
    proc = run_cli("deploy", "credit/2", "--endpoint", "strict", cwd=strict.root)  # never signed
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "deployment refused" in proc.stderr
    assert "is not signed" in proc.stderr
    (refused,) = _refusals(strict)
    assert refused["endpoint"] == "strict"
    assert not strict.deploy.list("strict")  # nothing started, nothing recorded as deployed
    assert not list((strict.root / ".modelcycle" / "deployments").glob("strict/*/bundle"))


def test_gate_passes_a_signed_bundle_and_refuses_an_altered_one(
    strict: Workspace, tmp_path: Path
) -> None:
    signed = strict.deploy.bundle("credit/1", tmp_path / "signed")
    sign_and_keep(signed, strict.keys, None, strict.settings.state_dir)  # as `bundle --sign`
    gate = strict.deploy.bundle_gate
    assert gate is not None
    # What deploy does: rebuild the bundle (byte-identical), then check it.
    info = strict.deploy.bundle("credit/1", tmp_path / "rebuilt")
    assert kept_signature_path(strict.settings.state_dir, info.digest).is_file()
    gate(info, "strict")
    assert bundle_signature_path(info.path).is_file()  # the signature travels with it
    (info.path / "serve.py").write_text("print('not the signed entrypoint')\n")
    with pytest.raises(IntegrityError, match=r"serve\.py differs from the signed file"):
        gate(info, "strict")
    assert len(_refusals(strict)) == 2
    assert not info.path.exists()
    shutil.rmtree(tmp_path / "signed")


def test_a_malformed_setting_is_named(ews: Workspace) -> None:
    from modelcycle.deploy.signing import deploy_settings

    with pytest.raises(InvalidInput, match=r"deploy\.require_signed"):
        deploy_settings({"deploy": {"require_signed": "yes"}})
    assert deploy_settings({}) == (False, None)
