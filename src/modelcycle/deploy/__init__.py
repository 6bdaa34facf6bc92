"""Deployment: bundles, targets (local processes; container and Kubernetes later), blue/green
rollout with automatic rollback, and deployment records.

Other parts use deploy only through the names exported here. Importing this package loads no
model library and no server: the bundle server (``modelcycle.deploy.bundle_server``) is a
module of its own.
"""

from modelcycle.deploy.bundle import BundleInfo, build_bundle, read_manifest, verify_bundle
from modelcycle.deploy.rollout import RolloutResult, SmokeResult
from modelcycle.deploy.service import Deployment, DeploymentFailed, DeployService
from modelcycle.deploy.targets import TARGETS, Instance, LocalTarget, Target, open_target

__all__ = [
    "TARGETS",
    "BundleInfo",
    "DeployService",
    "Deployment",
    "DeploymentFailed",
    "Instance",
    "LocalTarget",
    "RolloutResult",
    "SmokeResult",
    "Target",
    "build_bundle",
    "open_target",
    "read_manifest",
    "verify_bundle",
]
