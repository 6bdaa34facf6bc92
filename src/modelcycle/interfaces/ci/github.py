"""GitHub Actions: .github/workflows/modelcycle-training.yml and modelcycle-deployment.yml.

Secrets come from the repository's (or the environment's) secrets; production waits on the
``production`` environment's required reviewers, configured in the repository settings.
"""

from __future__ import annotations

__all__ = ["FILES"]

_ENV = """\
env:
  # A workspace named by URLs alone (docs/store.md): the shared database and artifact store.
  MODELCYCLE_DB_URL: ${{ secrets.MODELCYCLE_DB_URL }}
  MODELCYCLE_ARTIFACTS_URL: ${{ secrets.MODELCYCLE_ARTIFACTS_URL }}
  MODELCYCLE_CONFIG: modelcycle.toml
  AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}
  AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
  AWS_ENDPOINT_URL: ${{ secrets.AWS_ENDPOINT_URL }}
  NO_COLOR: "1"
"""

_SETUP = """\
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "@@PYTHON@@"
      - name: Install from the lock
        run: python -m pip install --no-deps -r @@LOCK@@
"""

TRAINING = (
    """\
# Written by `modelcycle ci init --provider github`. Trains, tests and promotes through the gate.
name: modelcycle training

on:
  push:
    branches: [main]
    paths:
      - "modelcycle.toml"
      - "pipelines/**"
      - "@@LOCK@@"
  schedule:
    - cron: "@@SCHEDULE@@"
  workflow_dispatch:
    inputs:
      dataset_version:
        description: "Data set to train on: NAME or NAME@VERSION (empty: @@DATA@@, newest)"
        required: false
        default: ""
        type: string

concurrency:
  group: modelcycle-training
  cancel-in-progress: false

permissions:
  contents: read

"""
    + _ENV
    + """
jobs:
  train:
    name: test, train, promote
    runs-on: ubuntu-latest
    timeout-minutes: 120
    defaults:
      run:
        shell: bash
    steps:
"""
    + _SETUP
    + """\
      - name: Test
        run: @@TEST_COMMAND@@
      - name: Train
        # Inputs reach the shell as variables, never spliced into the script (no injection).
        env:
          DATASET_VERSION: ${{ inputs.dataset_version }}
        run: @@TRAIN_SHELL@@
      - name: Read the new version
        id: version
        run: |
          modelcycle models show "@@MODEL@@@latest" --json > version.json
          ref=$(python -c 'import json; print(json.load(open("version.json"))["model"])')
          echo "ref=$ref" >> "$GITHUB_OUTPUT"
      - name: Promote through the gate (an approval request where policy requires one)
        env:
          REF: ${{ steps.version.outputs.ref }}
        run: |
          set +e
          modelcycle models promote "$REF" --to @@ALIAS@@
          code=$?
          set -e
          # 4: the gate refused the candidate (kept in the audit log): not a broken pipeline.
          if [ "$code" -eq 4 ]; then
            echo "::notice::$REF was not promoted to @@ALIAS@@ (gate refused)"
            exit 0
          fi
          exit "$code"
"""
)

DEPLOYMENT = (
    """\
# Written by `modelcycle ci init --provider github`. Staging, smoke test, then production behind
# the `production` environment's required reviewers (Settings > Environments).
name: modelcycle deployment

on:
  workflow_dispatch:
    inputs:
      model_ref:
        description: "NAME/VERSION or NAME@ALIAS to deploy"
        required: true
        default: "@@MODEL@@@@@ALIAS@@"
        type: string
  # `model.promoted`, posted to POST /repos/OWNER/REPO/dispatches (docs/ci-cd.md).
  repository_dispatch:
    types: [model.promoted]

concurrency:
  group: modelcycle-deployment
  cancel-in-progress: false

permissions:
  contents: read

"""
    + _ENV
    + """\
  MODEL_REF: ${{ inputs.model_ref || github.event.client_payload.model_ref }}

jobs:
  staging:
    name: deploy to staging and smoke-test
    runs-on: ubuntu-latest
    environment: staging
    timeout-minutes: 60
    defaults:
      run:
        shell: bash
    steps:
"""
    + _SETUP
    + """\
      - name: Deploy to staging
        run: modelcycle deploy "$MODEL_REF" --endpoint @@MODEL@@-staging --target @@DEPLOY_TARGET@@
      - name: Smoke test
        run: |
          modelcycle deployments show @@MODEL@@-staging --json > staging.json
          url=$(python -c 'import json; print(json.load(open("staging.json"))["url"])')
          curl --fail --silent --show-error --max-time 30 "$url/v2/health/ready"

  production:
    name: deploy to production
    needs: staging
    runs-on: ubuntu-latest
    environment: production
    timeout-minutes: 60
    defaults:
      run:
        shell: bash
    steps:
"""
    + _SETUP
    + """\
      - name: Deploy to production
        run: modelcycle deploy "$MODEL_REF" --endpoint @@MODEL@@ --target @@DEPLOY_TARGET@@
"""
)

FILES = {
    ".github/workflows/modelcycle-training.yml": TRAINING,
    ".github/workflows/modelcycle-deployment.yml": DEPLOYMENT,
}
