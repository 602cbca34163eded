"""Shared fixtures: offline environment, tiny models built once per run, a fresh studio per test."""
from __future__ import annotations

import os

# Offline and quiet before anything imports the hub, transformers or gradio.
os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    GRADIO_ANALYTICS_ENABLED="False",
    DO_NOT_TRACK="1",
    TRANSFORMERS_VERBOSITY="error",
)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """Tiny random-weight models, written once per test run and shared read-only."""
    from pipelines.testing import materialize_tiny_models

    root = tmp_path_factory.mktemp("models")
    materialize_tiny_models(root / "tiny")
    return root


@pytest.fixture
def settings(tmp_path, models_dir):
    from design_studio.settings import Settings

    return Settings(data_dir=tmp_path / "data", models_dir=models_dir, profile="tiny", device="cpu",
                    key_dir=tmp_path / "keys")  # keys outside the data dir, never in the real home


@pytest.fixture
def studio(settings):
    from design_studio.services import Studio

    return Studio(settings)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

