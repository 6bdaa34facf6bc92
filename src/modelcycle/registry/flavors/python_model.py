"""Any Python model: a user's class with ``load_context(artifacts)`` and ``predict(frame)``.

The convention MLflow's pyfunc users know. The class lives in one module file; the stored
model is that module's source plus the artifacts it loads (files or folders, by name), packed
in a zip with fixed timestamps (the same source and artifacts give the same bytes)::

    python_model.json     format, class name, code file, code_sha256, artifacts {name: path}
    model.py              the module's source
    artifacts/NAME/...    each artifact

Loading runs the module's code, so it always needs ``trust=True``, at registration and at
every load. Each version records ``code_sha256`` (tag and manifest) so a reviewer can tell
which code a version runs. Loading unpacks the artifacts into a private temporary folder
(removed when the model is collected), imports the source as a fresh module, builds the class
with no arguments and calls ``load_context({name: local path})``; ``predict`` then gets a
pandas DataFrame holding the signature's columns.

A class may set ``task`` (see ``signature.TASKS``) and, for classifiers that define
``predict_proba(frame)``, ``classes`` (the label of each probability column), and
``requirements`` (distribution names a deployment must install, pinned at the installed
versions).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import shutil
import sys
import tempfile
import types
import weakref
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput
from modelcycle.registry.flavors.base import ModelFlavor, SignatureHints, pinned

__all__ = ["FORMAT", "LoadedPythonModel", "PythonModelFlavor", "PythonModelSpec"]

FORMAT = "modelcycle-python-model/1"
_MANIFEST = "python_model.json"
_CODE = "model.py"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class PythonModelSpec:
    """What to store: the class (defined at the top level of a module file) and the
    artifacts ``load_context`` receives, by name (local files or folders)."""

    model_class: type[Any]
    artifacts: Mapping[str, str | Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model_class, type):
            raise InvalidInput("expected the model's class, not an instance", field="model")
        for attr in ("load_context", "predict"):
            if not callable(getattr(self.model_class, attr, None)):
                raise InvalidInput(
                    f"{self.model_class.__qualname__} has no {attr}() method; a python-model "
                    "class defines load_context(artifacts) and predict(frame)",
                    field="model",
                )


class LoadedPythonModel:
    """A stored python-model, loaded: the user's object, its code hash and stored bytes."""

    def __init__(self, model: Any, code_sha256: str, blob: bytes, root: Path) -> None:
        self.model = model
        self.code_sha256 = code_sha256
        self.blob = blob
        self.root = root
        weakref.finalize(self, shutil.rmtree, root, True)

    def predict(self, frame: Any) -> np.ndarray:
        return np.asarray(self.model.predict(frame))

    def predict_proba(self, frame: Any) -> np.ndarray:
        return np.asarray(self.model.predict_proba(frame), dtype=np.float64)


def _zip(files: Sequence[tuple[str, bytes]]) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return sink.getvalue()


def _artifact_files(name: str, path: Path) -> list[tuple[str, bytes]]:
    if path.is_file():
        return [(f"artifacts/{name}/{path.name}", path.read_bytes())]
    if path.is_dir():
        return [
            (f"artifacts/{name}/{path.name}/{p.relative_to(path).as_posix()}", p.read_bytes())
            for p in sorted(path.rglob("*"))
            if p.is_file()
        ]
    raise InvalidInput(f"no such file or folder: {path}", field=f"artifacts.{name}")


def _source_of(cls: type[Any]) -> str:
    module = sys.modules.get(cls.__module__)
    try:
        if module is None:
            raise TypeError(cls.__module__)
        return inspect.getsource(module)
    except (OSError, TypeError):
        raise InvalidInput(
            f"the source of {cls.__qualname__} cannot be read; define the class in a module file",
            field="model",
        ) from None


class PythonModelFlavor(ModelFlavor):
    name = "python-model"
    file_extension = "zip"
    needs_trust = True
    trust_reason = "loading it runs the model's Python code"

    def detect(self, model: Any) -> bool:
        return isinstance(model, PythonModelSpec | LoadedPythonModel)

    def save(self, model: Any) -> bytes:
        if isinstance(model, LoadedPythonModel):
            return model.blob
        spec: PythonModelSpec = model
        cls = spec.model_class
        if "." in cls.__qualname__:
            raise InvalidInput(
                f"{cls.__qualname__} is nested; define the class at the top of its module",
                field="model",
            )
        source = _source_of(cls).encode()
        files: list[tuple[str, bytes]] = [(_CODE, source)]
        paths: dict[str, str] = {}
        for name, where in sorted(spec.artifacts.items()):
            if not name or "/" in name or name in (".", ".."):
                raise InvalidInput("an artifact name is a plain, non-empty name", field="artifacts")
            found = _artifact_files(name, Path(where).expanduser())
            files.extend(found)
            paths[name] = f"artifacts/{name}/{Path(where).name}"
        manifest = {
            "format": FORMAT,
            "class": cls.__qualname__,
            "code": _CODE,
            "code_sha256": hashlib.sha256(source).hexdigest(),
            "artifacts": paths,
        }
        files.append((_MANIFEST, json.dumps(manifest, sort_keys=True).encode()))
        return _zip(files)

    def untrusted_types(self, data: bytes) -> list[str]:
        return ["python code"]

    def load(self, data: bytes, *, trust: bool = False) -> LoadedPythonModel:
        self.check_trust(trust)
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                manifest = json.loads(zf.read(_MANIFEST))
                if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                    raise ValueError(f"not {FORMAT}")
                source = zf.read(str(manifest["code"]))
                root = Path(tempfile.mkdtemp(prefix="modelcycle-python-model-"))
                for info in zf.infolist():
                    parts = PurePosixPath(info.filename).parts
                    if info.is_dir() or not parts or parts[0] != "artifacts" or ".." in parts:
                        continue
                    target = root.joinpath(*parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(info))
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
            raise InvalidInput(f"not a {FORMAT} file ({exc})", field="model") from exc
        code_sha = hashlib.sha256(source).hexdigest()
        if code_sha != manifest.get("code_sha256"):
            shutil.rmtree(root, ignore_errors=True)
            raise InvalidInput("the stored code does not match its code_sha256", field="model")
        module = types.ModuleType(f"modelcycle_python_model_{code_sha[:16]}")
        module.__file__ = str(root / _CODE)
        # Registered while it runs, so dataclasses and pickles inside it find their module.
        sys.modules[module.__name__] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - trusted
        cls = getattr(module, str(manifest["class"]), None)
        if not isinstance(cls, type):
            raise InvalidInput(f"the code defines no class {manifest['class']!r}", field="model")
        instance = cls()
        artifacts = {
            str(name): str(root.joinpath(*PurePosixPath(rel).parts))
            for name, rel in dict(manifest.get("artifacts") or {}).items()
        }
        instance.load_context(artifacts)
        return LoadedPythonModel(instance, code_sha, data, root)

    def runtime(self, model: Any) -> LoadedPythonModel:
        """The stored form, loaded: what the registry checks the signature with."""
        if isinstance(model, LoadedPythonModel):
            return model
        return self.load(self.save(model), trust=True)

    def requirements(self, model: Any) -> list[str]:
        cls = self._class_of(model)
        wanted = [str(r) for r in getattr(cls, "requirements", ())]
        return pinned("numpy", "pandas", *wanted)

    def signature_hints(self, model: Any) -> SignatureHints:
        cls = self._class_of(model)
        classes = getattr(cls, "classes", None)
        if classes is not None and callable(getattr(cls, "predict_proba", None)):
            labels = list(classes)
            binary = len(labels) == 2
            return SignatureHints(
                "binary_classification" if binary else "multiclass_classification", labels
            )
        return SignatureHints(str(getattr(cls, "task", "unknown")))

    def version_tags(self, model: Any) -> dict[str, str]:
        if isinstance(model, LoadedPythonModel):
            return {"code_sha256": model.code_sha256}
        return {"code_sha256": hashlib.sha256(_source_of(model.model_class).encode()).hexdigest()}

    @staticmethod
    def _class_of(model: Any) -> type[Any]:
        if isinstance(model, LoadedPythonModel):
            return type(model.model)
        cls: type[Any] = model.model_class
        return cls

    def fast_input(self, model: Any, table: pa.Table) -> Any:
        return table.to_pandas()

    def predict_input(self, model: Any, x: Any) -> np.ndarray:
        return self.runtime(model).predict(x)

    def predict_proba_input(self, model: Any, x: Any) -> np.ndarray:
        loaded = self.runtime(model)
        if not callable(getattr(loaded.model, "predict_proba", None)):
            return super().predict_proba_input(model, x)
        return loaded.predict_proba(x)
