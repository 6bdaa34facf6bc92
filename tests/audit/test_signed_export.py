"""Signing keys and signed audit exports: round trips, every failure mode of verification, the
third-party script that needs only `cryptography`."""

from __future__ import annotations

import ast
import base64
import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from _cli import run_cli
from modelcycle import Workspace, init_workspace
from modelcycle.audit import verify_script
from modelcycle.audit.dsse import pae
from modelcycle.audit.keys import KeyRing, fingerprint, load_public_key
from modelcycle.audit.signed_export import (
    export_signature_path,
    sign_export,
    verify_signed_export,
)
from modelcycle.errors import Conflict, InvalidInput, NotFound


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("signed") / "ws"
    mp = pytest.MonkeyPatch()
    for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        mp.delenv(var, raising=False)
    mp.setenv("MODELCYCLE_ACTOR", "tester")
    workspace, _ = init_workspace(root)
    workspace.keys.create()
    workspace.keys.create("other")
    # Non-ASCII text: the third-party script's canonical JSON must agree with modelcycle's.
    workspace.audit.note("approved in Zürich ✓")
    workspace.audit.note("second note")
    try:
        yield workspace
    finally:
        workspace.close()
        mp.undo()


@pytest.fixture(scope="module")
def signed(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(export, its signature, the default key's public PEM file), made by the CLI."""
    folder = tmp_path_factory.mktemp("export")
    export = folder / "audit.jsonl"
    proc = run_cli("audit", "export", str(export), "--sign", cwd=ws.root, check=True)
    assert "modelcycle audit verify --file" in proc.stdout
    public = folder / "default.pub"
    public.write_bytes(ws.keys.public_pem("default"))
    return export, export_signature_path(export), public


def _copy(src: tuple[Path, Path, Path], dst: Path) -> tuple[Path, Path]:
    export, sig = dst / "audit.jsonl", dst / "audit.jsonl.dsse.json"
    export.write_bytes(src[0].read_bytes())
    sig.write_bytes(src[1].read_bytes())
    return export, sig


def _key(path: Path):  # type: ignore[no-untyped-def]
    return load_public_key(path.read_bytes())


# -- keys -------------------------------------------------------------------------------------


def test_key_files_modes_listing_and_audit(ws: Workspace) -> None:
    keys_dir = ws.root / ".modelcycle" / "keys"
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys_dir / "default.pem").stat().st_mode) == 0o600
    entries = {e.name: e for e in ws.keys.list()}
    assert set(entries) == {"default", "other"}
    assert entries["default"].default
    key = ws.keys.load()
    assert key.private_key.curve.name == "secp256r1"
    assert entries["default"].fingerprint == key.fingerprint == fingerprint(key.public_key)
    created = [e for e in ws.audit.events() if e.action == "key.created"]
    assert [e.payload["name"] for e in created] == ["default", "other"]
    assert created[0].payload["fingerprint"] == key.fingerprint
    # The private key is nowhere in the log.
    private_b64 = (keys_dir / "default.pem").read_text().splitlines()[1]
    assert not any(private_b64 in json.dumps(e.payload) for e in ws.audit.events())
    with pytest.raises(Conflict):
        ws.keys.create("default")


def test_cli_never_prints_a_private_key(ws: Workspace) -> None:
    listed = run_cli("keys", "list", "--json", cwd=ws.root, check=True).stdout
    public = run_cli("keys", "export-public", "other", cwd=ws.root, check=True).stdout
    assert "PRIVATE" not in listed + public
    assert fingerprint(load_public_key(public.encode())) in listed
    missing = run_cli("audit", "export", "x.jsonl", "--sign", "--key", "nokey", cwd=ws.root)
    assert missing.returncode == 3
    assert "no signing key 'nokey'" in missing.stderr
    assert not (ws.root / "x.jsonl").exists()  # nothing written when the key is missing


def test_a_key_file_others_can_read_is_refused_from_the_cli(ws: Workspace) -> None:
    """A group- or other-readable key: exit 2, one line naming the file, nothing written."""
    path = ws.root / ".modelcycle" / "keys" / "other.pem"
    for mode in (0o640, 0o604):
        path.chmod(mode)
        try:
            done = run_cli("audit", "export", "y.jsonl", "--sign", "--key", "other", cwd=ws.root)
        finally:
            path.chmod(0o600)
        assert done.returncode == 2, done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "readable by group or others" in done.stderr
        assert "other.pem" in done.stderr
        assert not (ws.root / "y.jsonl").exists()


def test_the_private_key_is_not_in_the_database(ws: Workspace) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec as ec_

    key = ws.keys.load()
    assert isinstance(key.private_key, ec_.EllipticCurvePrivateKey)
    scalar = key.private_key.private_numbers().private_value.to_bytes(32, "big")
    pem_lines = (ws.root / ".modelcycle/keys/default.pem").read_text().splitlines()[1:-1]
    stored = b"".join(p.read_bytes() for p in (ws.root / ".modelcycle").glob("modelcycle.db*"))
    assert stored  # the SQLite file (and its WAL) of this workspace
    assert scalar not in stored
    assert not any(line.encode() in stored for line in pem_lines)
    assert b"PRIVATE KEY" not in stored


def test_group_readable_key_is_refused(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    key = ring.create("k")
    assert key.path is not None
    key.path.chmod(0o640)
    with pytest.raises(InvalidInput, match="readable by group or others"):
        ring.load("k")


def test_keys_named_in_the_config_from_a_file_or_the_environment(tmp_path: Path) -> None:
    made = KeyRing(tmp_path / "made").create("prod")
    assert made.path is not None
    pem = made.path.read_text()
    config = {
        "signing": {
            "key": "fromenv",
            "keys": {
                "fromenv": {"private_key_env": "MC_TEST_KEY"},
                "fromfile": {"private_key_file": str(made.path)},
            },
        }
    }
    ring = KeyRing(tmp_path / "keys", config, environ={"MC_TEST_KEY": pem})
    assert ring.load().fingerprint == ring.load("fromfile").fingerprint == made.fingerprint
    assert ring.load().source == "env:MC_TEST_KEY"
    with pytest.raises(NotFound, match="MC_TEST_KEY"):
        KeyRing(tmp_path / "keys", config, environ={}).load()
    with pytest.raises(InvalidInput, match="exactly one of"):
        KeyRing(tmp_path / "keys", {"signing": {"keys": {"x": {}}}})


# -- signed exports ---------------------------------------------------------------------------


def test_signed_export_round_trip_from_the_cli(
    ws: Workspace, signed: tuple[Path, Path, Path]
) -> None:
    export, sig, public = signed
    proc = run_cli(
        "audit", "verify", "--file", str(export), "--public-key", str(public), cwd=ws.root
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    assert ws.keys.load().fingerprint in proc.stdout
    envelope = json.loads(sig.read_text())
    body = json.loads(base64.b64decode(envelope["payload"]))
    assert body["_type"] == "https://in-toto.io/Statement/v1"
    events, head = body["predicate"]["events"], body["predicate"]["head"]
    assert head["seq"] == events
    assert body["predicate"]["signer"]["key"] == "default"
    used = [e for e in ws.audit.events() if e.action == "key.used"]
    assert used
    assert used[-1].payload["purpose"] == "audit-export"
    assert used[-1].payload["sha256"] == body["subject"][0]["digest"]["sha256"]


def test_a_changed_byte_fails_from_the_cli(
    ws: Workspace, signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    export, _ = _copy(signed, tmp_path)
    data = bytearray(export.read_bytes())
    data[data.index(b"second note")] ^= 0x01
    export.write_bytes(bytes(data))
    proc = run_cli(
        "audit", "verify", "--file", str(export), "--public-key", str(signed[2]), cwd=ws.root
    )
    assert proc.returncode == 1
    assert "FAILED" in proc.stderr
    assert "changed or truncated after signing" in proc.stderr


def test_malformed_public_key_is_bad_input(ws: Workspace, signed: tuple[Path, Path, Path]) -> None:
    bad = signed[0].parent / "bad.pub"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    proc = run_cli(
        "audit", "verify", "--file", str(signed[0]), "--public-key", str(bad), cwd=ws.root
    )
    assert proc.returncode == 2
    assert "is not a PEM public key" in proc.stderr


def test_truncated_export_fails(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    export, _ = _copy(signed, tmp_path)
    lines = export.read_bytes().splitlines(keepends=True)
    export.write_bytes(b"".join(lines[:-2]))  # the last event and the head line gone
    report = verify_signed_export(export, _key(signed[2]))
    assert not report.ok
    assert "changed or truncated" in str(report.reason)


def test_wrong_key_fails(ws: Workspace, signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    export, _ = _copy(signed, tmp_path)
    report = verify_signed_export(export, ws.keys.load("other").public_key)
    assert not report.ok
    assert "not by the given public key" in str(report.reason)


def test_replaced_signature_bytes_fail(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    export, sig = _copy(signed, tmp_path)
    envelope = json.loads(sig.read_text())
    raw = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    raw[-1] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    sig.write_text(json.dumps(envelope))
    report = verify_signed_export(export, _key(signed[2]))
    assert report.reason == "the signature does not verify with the given public key"


def test_key_swap_fails(ws: Workspace, signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Someone re-signs an altered export with their own key: the expected key refuses it."""
    export, _ = _copy(signed, tmp_path)
    export.write_bytes(export.read_bytes().replace(b"second note", b"third note!"))
    sign_export(export, ws.keys.load("other"), actor="mallory", root="/elsewhere")
    report = verify_signed_export(export, _key(signed[2]))
    assert not report.ok
    assert "not by the given public key" in str(report.reason)


def test_removed_event_signed_with_the_right_key_fails_on_the_chain(
    ws: Workspace, signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The signer's own key over a doctored export: the chain check after the signature fails."""
    export, _ = _copy(signed, tmp_path)
    lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
    export.write_text("".join(lines[:1] + lines[2:]), encoding="utf-8")  # event 2 removed
    sign_export(export, ws.keys.load(), actor="insider", root=str(ws.root))
    report = verify_signed_export(export, _key(signed[2]))
    assert report.reason == (
        "the signed chain does not verify: event 2 missing: the chain jumps from event 1 to event 3"
    )


def test_unsigned_export_fails(
    ws: Workspace, signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    export, sig = _copy(signed, tmp_path)
    sig.unlink()
    report = verify_signed_export(export, _key(signed[2]))
    assert not report.ok
    assert "the export is not signed" in str(report.reason)


def test_dsse_pae_follows_the_spec() -> None:
    # The example from the DSSE v1 protocol description.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


# -- the third-party script -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_script(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checker as an installed modelcycle writes it (package data, not the repository)."""
    out = tmp_path_factory.mktemp("script") / "verify_audit_export.py"
    done = run_cli("audit", "verify-script", "--out", str(out), cwd=ws.root, check=True)
    assert f"python3 {out} EXPORT.jsonl KEY.pub" in done.stdout
    return out


def _only_cryptography(folder: Path) -> Path:
    """A folder holding only what `pip install cryptography` brings (links to the installed
    distributions' top-level names), for a path with the standard library and nothing else."""
    from importlib import metadata

    folder.mkdir()
    for dist in ("cryptography", "cffi", "pycparser"):
        found = metadata.distribution(dist)
        tops = {f.parts[0] for f in found.files or () if not f.parts[0].endswith(".dist-info")}
        for top in tops:
            source = Path(str(found.locate_file(top)))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


def test_third_party_script_uses_only_cryptography_and_is_short(shipped_script: Path) -> None:
    text = shipped_script.read_text()
    assert text == Path(str(verify_script.__file__)).read_text()
    tree = ast.parse(text)
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) == {"cryptography"}
    assert len(text.splitlines()) < 100


def test_third_party_script_verifies_and_catches_a_flipped_byte(
    signed: tuple[Path, Path, Path], shipped_script: Path, tmp_path: Path
) -> None:
    export, _ = _copy(signed, tmp_path)
    libs = _only_cryptography(tmp_path / "libs")
    # -I -S: no site-packages, no environment, no user site; the path is the standard library
    # plus the cryptography folder, so a stray import of anything else fails the test.
    run = (
        "import runpy, sys; sys.path.append(sys.argv.pop(1)); sys.argv.pop(0); "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )

    def script(*args: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-I", "-S", "-c", run, str(libs), str(shipped_script),
             *map(str, args)],
            capture_output=True, text=True, cwd=tmp_path, timeout=60,
        )  # fmt: skip

    ok = script(export, signed[2])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK: "), ok.stdout + ok.stderr
    data = bytearray(export.read_bytes())
    data[data.index("Zürich".encode())] ^= 0x20
    export.write_bytes(bytes(data))
    bad = script(export, signed[2])
    assert bad.returncode == 1
    assert "changed or truncated" in bad.stdout
    other = tmp_path / "other.pub"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    export.write_bytes(signed[0].read_bytes())
    wrong = script(export, other)
    assert wrong.returncode == 1
    assert "does not verify with this public key" in wrong.stdout
