"""GitLab CI: .gitlab/modelcycle-training.yml and .gitlab/modelcycle-deployment.yml.

Both are included from the project's ``.gitlab-ci.yml``, written beside them (a project that has
one already adds the two ``include:`` lines itself). One pipeline definition serves every trigger:
a push, a schedule or a manual run without ``MODEL_REF`` trains; a pipeline trigger (the
``model.promoted`` webhook) or a manual run with ``MODEL_REF`` deploys. Production is a
protected environment whose approval rules are set in Settings > CI/CD > Protected environments.
Secrets are masked CI/CD variables of the project.
"""

from __future__ import annotations

__all__ = ["FILES"]

_DEFAULTS = """\
.modelcycle:
  image: python:@@PYTHON@@
  variables:
    # A workspace named by URLs alone (docs/store.md); MODELCYCLE_DB_URL,
    # MODELCYCLE_ARTIFACTS_URL and the AWS_* credentials are masked project variables.
    MODELCYCLE_CONFIG: modelcycle.toml
    NO_COLOR: "1"
  before_script:
    - python -m pip install --no-deps -r @@LOCK@@
"""

ROOT = """\
# Written by `modelcycle ci init --provider gitlab`.
stages: [test, train, promote, staging, production]

include:
  - local: .gitlab/modelcycle-training.yml
  - local: .gitlab/modelcycle-deployment.yml
"""

TRAINING = (
    """\
# Written by `modelcycle ci init --provider gitlab`. Trains, tests and promotes through the gate.
# Schedule it in Build > Pipeline schedules (suggested cron: @@SCHEDULE@@); run it by hand with
# DATASET_VERSION=NAME@VERSION to train on one data set version.
variables:
  DATASET_VERSION:
    value: ""
    description: "Data set to train on: NAME or NAME@VERSION (empty: @@DATA@@, newest)"
  MODEL_REF:
    value: ""
    description: "Set to NAME/VERSION or NAME@ALIAS to deploy instead of training"

"""
    + _DEFAULTS
    + """
.modelcycle-training-rules:
  rules:
    - if: '$MODEL_REF != null && $MODEL_REF != ""'
      when: never
    - if: '$CI_PIPELINE_SOURCE == "schedule" || $CI_PIPELINE_SOURCE == "web"'
    - if: '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH'
      changes:
        - modelcycle.toml
        - pipelines/**/*
        - @@LOCK@@

modelcycle-test:
  extends: [.modelcycle, .modelcycle-training-rules]
  stage: test
  script:
    - @@TEST_COMMAND@@

modelcycle-train:
  extends: [.modelcycle, .modelcycle-training-rules]
  stage: train
  resource_group: modelcycle-training
  script:
    - @@TRAIN_SHELL@@
    - modelcycle models show "@@MODEL@@@latest" --json > version.json
  artifacts:
    paths: [version.json]

modelcycle-promote:
  extends: [.modelcycle, .modelcycle-training-rules]
  stage: promote
  script:
    - ref=$(python -c 'import json; print(json.load(open("version.json"))["model"])')
    # 4: the gate refused the candidate (kept in the audit log): not a broken pipeline.
    - code=0; modelcycle models promote "$ref" --to @@ALIAS@@ || code=$?
    - if [ "$code" -eq 4 ]; then echo "$ref not promoted to @@ALIAS@@ (gate refused)"; code=0; fi
    - exit "$code"
"""
)

DEPLOYMENT = """\
# Written by `modelcycle ci init --provider gitlab`. Runs when MODEL_REF is set: by hand, or by
# the pipeline trigger that a `model.promoted` webhook calls (docs/ci-cd.md).
.modelcycle-deployment-rules:
  rules:
    - if: '$MODEL_REF == null || $MODEL_REF == ""'
      when: never
    - if: '$CI_PIPELINE_SOURCE == "trigger" || $CI_PIPELINE_SOURCE == "pipeline"'
    - if: '$CI_PIPELINE_SOURCE == "web" || $CI_PIPELINE_SOURCE == "api"'

modelcycle-staging:
  extends: [.modelcycle, .modelcycle-deployment-rules]
  stage: staging
  resource_group: modelcycle-staging
  environment:
    name: staging
    deployment_tier: staging
  script:
    - modelcycle deploy "$MODEL_REF" --endpoint @@MODEL@@-staging --target @@DEPLOY_TARGET@@
    - modelcycle deployments show @@MODEL@@-staging --json > staging.json
    - url=$(python -c 'import json; print(json.load(open("staging.json"))["url"])')
    - curl --fail --silent --show-error --max-time 30 "$url/v2/health/ready"

modelcycle-production:
  extends: [.modelcycle, .modelcycle-deployment-rules]
  stage: production
  needs: [modelcycle-staging]
  resource_group: modelcycle-production
  environment:
    name: production
    deployment_tier: production
  script:
    - modelcycle deploy "$MODEL_REF" --endpoint @@MODEL@@ --target @@DEPLOY_TARGET@@
"""

FILES = {
    ".gitlab-ci.yml": ROOT,
    ".gitlab/modelcycle-training.yml": TRAINING,
    ".gitlab/modelcycle-deployment.yml": DEPLOYMENT,
}
