"""Fixtures of the deploy tests: repository paths and the thresholds renderer (loaded from its file)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="session")
def render_module():
    """`deploy/prometheus/render.py` as a module (deploy/ is not a package: it ships outside the wheel)."""
    spec = importlib.util.spec_from_file_location("coachup_deploy_render", DEPLOY / "prometheus" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
