"""Shared fixtures: the committed demo ensemble and its repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.repository import ModelRepository

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_REPOSITORY = PROJECT_ROOT / "data" / "model_repository"


@pytest.fixture(scope="session")
def demo_repository() -> ModelRepository:
    return ModelRepository(DEMO_REPOSITORY)


@pytest.fixture(scope="session")
def demo_ensemble_name(demo_repository: ModelRepository) -> str:
    names = [n for n in demo_repository.names() if n.startswith("Ensemble_DemoPlant_")]
    assert names, f"no committed demo ensemble in {DEMO_REPOSITORY}"
    return names[0]
