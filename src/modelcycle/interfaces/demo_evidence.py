"""The demo's last step: sign the evidence (audit export, deployed bundle, evidence pack),
verify each part as a third party would, and print the commands that do it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modelcycle.workspace import Workspace

__all__ = ["sign_evidence"]


def sign_evidence(ws: Workspace, say: Callable[[str], None], *, model: str = "credit") -> None:
    """Create the signing key, sign and check the export, the champion's deployed bundle and
    an evidence pack; say what was made and how to verify it."""
    from modelcycle.audit.signed_export import verify_signed_export, write_verify_script
    from modelcycle.deploy.signing import sign_bundle, verify_bundle_signature
    from modelcycle.evidence import build_pack, verify_pack

    out = ws.root / "evidence"
    out.mkdir(exist_ok=True)
    key = ws.keys.create()
    public = out / f"{key.name}.pub"
    public.write_bytes(key.public_pem)
    say(f"[bold]4.[/] evidence: signing key [bold]{key.name}[/] (P-256), fingerprint "
        f"{key.fingerprint[:16]}...; public key {public}")  # fmt: skip

    export = out / "audit.jsonl"
    ws.audit.export(export)
    ws.keys.sign_export(export, key.name)
    checked = verify_signed_export(export, key.public_key)
    if not checked.ok:
        raise RuntimeError(f"the signed export does not verify: {checked.reason}")
    say(f"   signed audit export {export} (+ .dsse.json): verified")
    # The stand-alone checker, written from the installed package (`audit verify-script`).
    script, _ = write_verify_script(out / "verify_audit_export.py")

    champion = ws.registry.get(f"{model}@champion").version
    deployed = [  # the champion's newest deployment (stopped by now; its bundle is kept)
        d
        for d in ws.deploy.list(all=True)
        if d.model_name == model and d.model_version == champion and d.details.get("bundle")
    ]
    bundle = Path(str(deployed[-1].details["bundle"])) if deployed else None
    if bundle is not None and bundle.is_dir():
        sig = sign_bundle(bundle, key)
        ws.keys.record_use(key, purpose="bundle", subject=deployed[-1].model,
                           sha256=deployed[-1].bundle_sha256, signature=str(sig))  # fmt: skip
        verify_bundle_signature(bundle, public)
        say(f"   signed the deployed bundle of {deployed[-1].model}: {sig}: verified")

    pack = out / "evidence.zip"
    build_pack(ws, model, pack, sign=True, key=key.name)
    problem, summary = verify_pack(pack, key.public_key)
    if problem is not None:
        raise RuntimeError(f"the evidence pack does not verify: {problem}")
    say(f"   evidence pack {pack}: {summary}")
    say("   verify them anywhere (the public key is all that is needed; the script needs only "
        "`cryptography`):")  # fmt: skip
    commands = [
        f"modelcycle audit verify --file {export} --public-key {public}",
        f"python3 {script} {export} {public}",
    ]
    if bundle is not None and bundle.is_dir():
        commands.append(
            f"model_signing verify key {bundle} --signature {bundle}.sig --public_key {public}"
        )
    commands += [
        f"modelcycle audit verify --pack {pack} --public-key {public}",
        f"cd {ws.root} && modelcycle models card {model}@champion",
    ]
    # Plain lines, never wrapped to the terminal's width (a wrapped command breaks when pasted).
    for command in commands:
        print(f"    {command}", flush=True)
