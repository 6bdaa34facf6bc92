"""Azure Pipelines: azure-pipelines/modelcycle-training.yml and modelcycle-deployment.yml.

Create one pipeline from each file (Pipelines > New pipeline > existing YAML file). Secrets are
secret variables of a variable group named ``modelcycle``, mapped into each step's environment
(Azure never exposes secret variables to scripts otherwise). Production is a deployment job on
the ``production`` environment, whose approvals and checks are set in Pipelines > Environments.
The ``model.promoted`` webhook starts the deployment pipeline through the Runs REST API with the
``modelRef`` template parameter (docs/ci-cd.md).
"""

from __future__ import annotations

__all__ = ["FILES"]

_SECRETS = (
    "MODELCYCLE_DB_URL: $(MODELCYCLE_DB_URL)",
    "MODELCYCLE_ARTIFACTS_URL: $(MODELCYCLE_ARTIFACTS_URL)",
    "MODELCYCLE_CONFIG: modelcycle.toml",
    "AWS_ACCESS_KEY_ID: $(AWS_ACCESS_KEY_ID)",
    "AWS_SECRET_ACCESS_KEY: $(AWS_SECRET_ACCESS_KEY)",
    "AWS_ENDPOINT_URL: $(AWS_ENDPOINT_URL)",
    'NO_COLOR: "1"',
)


def _secrets(indent: int) -> str:
    """The ``env:`` lines of a step at ``indent`` spaces: secrets reach scripts only this way."""
    return "".join(" " * indent + line + "\n" for line in _SECRETS)


TRAINING = (
    """\
# Written by `modelcycle ci init --provider azure`. Trains, tests and promotes through the gate.
trigger:
  branches:
    include: [main]
  paths:
    include:
      - modelcycle.toml
      - pipelines/*
      - @@LOCK@@

pr: none

schedules:
  - cron: "@@SCHEDULE@@"
    displayName: modelcycle scheduled training
    branches:
      include: [main]
    always: "true"

parameters:
  - name: datasetVersion
    displayName: "Data set to train on: NAME or NAME@VERSION (empty: @@DATA@@, newest)"
    type: string
    default: " "

variables:
  - group: modelcycle

pool:
  vmImage: ubuntu-latest

jobs:
  - job: train
    displayName: test, train, promote
    timeoutInMinutes: "120"
    steps:
      - task: UsePythonVersion@0
        inputs:
          versionSpec: "@@PYTHON@@"
      - script: python -m pip install --no-deps -r @@LOCK@@
        displayName: Install from the lock
      - script: @@TEST_COMMAND@@
        displayName: Test
      - bash: |
          set -euo pipefail
          DATASET_VERSION="$(echo "$DATASET_PARAMETER" | xargs)"  # " " stands for empty
          @@TRAIN_SHELL@@
          modelcycle models show "@@MODEL@@@latest" --json > version.json
          ref=$(python -c 'import json; print(json.load(open("version.json"))["model"])')
          echo "##vso[task.setvariable variable=modelRef]$ref"
        displayName: Train
        env:
          DATASET_PARAMETER: ${{ parameters.datasetVersion }}
"""
    + _secrets(10)
    + """\
      - bash: |
          code=0; modelcycle models promote "$(modelRef)" --to @@ALIAS@@ || code=$?
          # 4: the gate refused the candidate (kept in the audit log): not a broken pipeline.
          if [ "$code" -eq 4 ]; then
            echo "##[warning]$(modelRef) was not promoted to @@ALIAS@@ (gate refused)"
            exit 0
          fi
          exit "$code"
        displayName: Promote through the gate
        env:
"""
    + _secrets(10)
)

DEPLOYMENT = (
    """\
# Written by `modelcycle ci init --provider azure`. Staging, smoke test, then production behind
# the `production` environment's approvals and checks.
trigger: none
pr: none

parameters:
  - name: modelRef
    displayName: NAME/VERSION or NAME@ALIAS to deploy
    type: string
    default: "@@MODEL@@@@@ALIAS@@"

variables:
  - group: modelcycle

pool:
  vmImage: ubuntu-latest

stages:
  - stage: staging
    displayName: Staging
    jobs:
      - deployment: deploy_staging
        displayName: deploy to staging and smoke-test
        environment: staging
        strategy:
          runOnce:
            deploy:
              steps:
                - checkout: self
                - task: UsePythonVersion@0
                  inputs:
                    versionSpec: "@@PYTHON@@"
                - script: python -m pip install --no-deps -r @@LOCK@@
                  displayName: Install from the lock
                - bash: |
                    set -euo pipefail
                    modelcycle deploy "$MODEL_REF" --endpoint @@MODEL@@-staging \\
                      --target @@DEPLOY_TARGET@@
                    modelcycle deployments show @@MODEL@@-staging --json > staging.json
                    url=$(python -c 'import json; print(json.load(open("staging.json"))["url"])')
                    curl --fail --silent --show-error --max-time 30 "$url/v2/health/ready"
                  displayName: Deploy to staging and smoke-test
                  env:
                    MODEL_REF: ${{ parameters.modelRef }}
"""
    + _secrets(20)
    + """\
  - stage: production
    displayName: Production
    dependsOn: staging
    jobs:
      - deployment: deploy_production
        displayName: deploy to production
        environment: production
        strategy:
          runOnce:
            deploy:
              steps:
                - checkout: self
                - task: UsePythonVersion@0
                  inputs:
                    versionSpec: "@@PYTHON@@"
                - script: python -m pip install --no-deps -r @@LOCK@@
                  displayName: Install from the lock
                - bash: |
                    modelcycle deploy "$MODEL_REF" --endpoint @@MODEL@@ --target @@DEPLOY_TARGET@@
                  displayName: Deploy to production
                  env:
                    MODEL_REF: ${{ parameters.modelRef }}
"""
    + _secrets(20)
)

FILES = {
    "azure-pipelines/modelcycle-training.yml": TRAINING,
    "azure-pipelines/modelcycle-deployment.yml": DEPLOYMENT,
}
