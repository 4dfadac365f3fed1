"""Deploy: Kubernetes manifests and Argo / Airflow workflows of a release, checked, runnable locally."""

from mlfactor.deploy.engines import EngineOptions, render_airflow, render_argo
from mlfactor.deploy.local import LocalProcess, local_process
from mlfactor.deploy.options import DeployOptions, Resources, image_for
from mlfactor.deploy.releases import get_release, pick_release
from mlfactor.deploy.render import Rendered, render_release
from mlfactor.deploy.rules import RULES, RuleContext, check_manifests
from mlfactor.deploy.sweep import render_sweep, render_sweep_for_run

__all__ = [
    "RULES",
    "DeployOptions",
    "EngineOptions",
    "LocalProcess",
    "Rendered",
    "Resources",
    "RuleContext",
    "check_manifests",
    "get_release",
    "image_for",
    "local_process",
    "pick_release",
    "render_airflow",
    "render_argo",
    "render_release",
    "render_sweep",
    "render_sweep_for_run",
]
