"""The model repository: a folder of ensemble folders, addressed by name only."""

from __future__ import annotations

import re
import time
from pathlib import Path

from models.twin.manifest import MANIFEST_FILE, EnsembleManifest

ENSEMBLE_NAME = re.compile(r"^Ensemble_[A-Za-z0-9_.-]{1,120}$")
RETIRED = ".retired"


class EnsembleNotFound(LookupError):
    """No ensemble of that name in the repository (or the name is not a valid ensemble name)."""


class ModelRepository:
    """Resolves ensemble names to folders; never follows a name outside its root."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    def path(self, name: str) -> Path:
        """Folder of ensemble `name`; raises EnsembleNotFound for unknown or malformed names."""
        if not isinstance(name, str) or not ENSEMBLE_NAME.match(name) or ".." in name:
            raise EnsembleNotFound(name)
        folder = self.root / name
        if folder.parent != self.root or not (folder / MANIFEST_FILE).is_file():
            raise EnsembleNotFound(name)
        return folder

    def names(self) -> list[str]:
        """Names of all ensembles in the repository, newest first."""
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if ENSEMBLE_NAME.match(p.name) and (p / MANIFEST_FILE).is_file()]
        return sorted(found, key=lambda n: n.rsplit("_", 2)[-2:], reverse=True)

    def retire(self, name: str) -> Path:
        """Move ensemble `name` out of service into `<root>/.retired/` (kept, not deleted); its new path."""
        folder = self.path(name)
        target = self.root / RETIRED / f"{name}.{int(time.time())}"
        target.parent.mkdir(exist_ok=True)
        return folder.rename(target)

    def manifest(self, name: str) -> EnsembleManifest:
        return EnsembleManifest.model_validate_json((self.path(name) / MANIFEST_FILE).read_text())
