#!/usr/bin/env bash
# The longest loop that exists so far, on the embedded default (SQLite + local files):
# create a workspace, store an artifact, add an operator note, show and verify the audit log,
# export it and verify the export offline.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mc="$here/.venv/bin/modelcycle"
demo="$here/demo-workspace"

rm -rf "$demo"
step() { printf '\n\033[1m$ modelcycle %s\033[0m\n' "$*"; "$mc" "$@"; }

step init "$demo"
cd "$demo"
printf 'feature_a,feature_b,label\n1.0,2.0,0\n3.0,4.0,1\n' > sample.csv
step artifacts put sample.csv --label "demo sample"
step artifacts list
step artifacts verify
step audit note "demo: sample data reviewed and approved"
step audit log
step audit verify
step audit export audit-export.jsonl
step audit verify --file audit-export.jsonl
printf '\nDemo workspace left in %s\n' "$demo"
