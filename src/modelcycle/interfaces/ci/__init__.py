"""Pipeline definitions for a team's own CI: GitHub Actions, GitLab CI, Azure Pipelines.

:func:`render` returns the files ``modelcycle ci init`` writes, by relative path. Each provider is
one module holding its two workflows (training, deployment) as text with ``@@NAME@@`` markers,
filled from :class:`CiOptions`; the markers never clash with the providers' own ``${{ }}``,
``$VAR`` and ``$(var)`` syntaxes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.ci import azure, github, gitlab

__all__ = ["PROVIDERS", "CiOptions", "render"]

# provider -> its files: {path relative to the repository root: text with @@MARKERS@@}.
PROVIDERS: dict[str, dict[str, str]] = {
    "github": github.FILES,
    "gitlab": gitlab.FILES,
    "azure": azure.FILES,
}

# What may go into a YAML scalar and a shell word unquoted: no quotes, spaces or `$`.
_SAFE = re.compile(r"^[A-Za-z0-9_.@/:=+,-]{1,200}$")


@dataclass(frozen=True)
class CiOptions:
    """What the workflows train, test, promote and deploy."""

    data: str  # the data set NAME the scheduled and push-triggered runs train on
    target: str  # the label column
    model: str  # the registered model name
    alias: str = "champion"
    test_command: str = "make test"
    pipeline: str | None = None  # module:attribute; None = the built-in `modelcycle train`
    lock: str = "requirements.lock"
    python: str = "3.11"
    deploy_target: str = "kubernetes"
    schedule: str = "0 3 * * 1"  # Mondays 03:00 UTC

    def check(self) -> None:
        for name, value in asdict(self).items():
            if name in ("test_command", "schedule") or value is None:
                continue
            if not _SAFE.match(str(value)):
                raise InvalidInput(
                    "expected letters, digits and . _ - @ / : = + , only (no spaces or quotes)",
                    field=f"--{name.replace('_', '-')}",
                )
        if "\n" in self.test_command or not self.test_command.strip():
            raise InvalidInput("expected one non-empty line", field="--test-command")
        if len(self.schedule.split()) != 5:
            raise InvalidInput("expected a 5-field cron expression", field="--schedule")


def _train_command(opts: CiOptions, data_expr: str) -> str:
    """The training command line; ``data_expr`` is the provider's "input, else default"."""
    if opts.pipeline:
        return f'modelcycle pipeline run {opts.pipeline} --data "{data_expr}"'
    return f'modelcycle train --data "{data_expr}" --target {opts.target} --register {opts.model}'


def render(provider: str, opts: CiOptions) -> dict[str, str]:
    """The files for ``provider``, by path relative to the repository root."""
    if provider not in PROVIDERS:
        raise InvalidInput(
            f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}",
            field="--provider",
        )
    opts.check()
    values = {k.upper(): str(v) for k, v in asdict(opts).items() if v is not None}
    # Any shell line the user gives, as a YAML double-quoted scalar (JSON is valid YAML).
    values["TEST_COMMAND"] = json.dumps(opts.test_command)
    values["TRAIN_SHELL"] = _train_command(opts, "${DATASET_VERSION:-" + opts.data + "}")
    out: dict[str, str] = {}
    for path, text in PROVIDERS[provider].items():
        for key, value in values.items():
            text = text.replace(f"@@{key}@@", value)
        left = re.search(r"@@[A-Z_]+@@", text)
        if left:  # a marker with no value is a bug here, never the user's
            raise AssertionError(f"{path}: {left.group(0)} not filled")
        out[path] = text
    return out
