"""A loaded twin ensemble: validated inputs in physical units -> predictions in physical units."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.twin.manifest import read_manifest, read_scalers
from models.twin.runtimes import choose_runner


@dataclass
class RowBatch:
    """Rows to predict and, per row, which targets use the boost (what `Ensemble.predict` takes)."""

    boundary: np.ndarray  # [n, n_boundary] float64
    boost_mask: np.ndarray  # [n, n_target] bool

    def __len__(self) -> int:
        return len(self.boundary)


class Ensemble:
    """A loaded ensemble: validated inputs in physical units -> predictions in physical units."""

    def __init__(self, folder: Path, intra_op_threads: int = 0, runtime: str = "auto"):
        """`runtime`: `cpu`, `cuda` or `auto` (see models.twin.runtimes.choose_runner); `self.runtime` names
        the one in use."""
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.boundary_scaler, self.target_scaler = read_scalers(self.folder)
        self._runner, self.runtime = choose_runner(self.folder, self.manifest, intra_op_threads, runtime)
        self.default_boost = self.boost_mask({})

    @property
    def name(self) -> str:
        return self.manifest.name

    def boost_mask(self, overrides: dict[str, bool]) -> np.ndarray:
        """Per-target boolean mask: the manifest's boost choice with `overrides` {target: bool} applied."""
        default = set(self.manifest.boost_signals)
        return np.array(
            [overrides.get(t, t in default) for t in self.manifest.target_signals], dtype=bool
        )

    def run_scaled(self, boundary_scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One runtime call: scaled boundary rows -> (stage1, residual) in scaled target units."""
        return self._runner.run_scaled(boundary_scaled)

    def predict(self, boundary: np.ndarray, boost_mask: np.ndarray | None = None) -> np.ndarray:
        """boundary [n, n_boundary] -> targets [n, n_target], physical units.

        `boost_mask` is [n_target] or per row [n, n_target]; None uses the manifest's choice.
        """
        stage1, residual = self.run_scaled(self.boundary_scaler.transform(boundary))
        mask = self.default_boost if boost_mask is None else boost_mask
        return self.target_scaler.inverse(stage1 + residual * mask)

    def describe(self) -> dict:
        """Plain-data summary for clients (EnsembleManifest.summary)."""
        return self.manifest.summary()
