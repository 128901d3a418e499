"""The digital twin's model code.

    manifest      an ensemble folder on disk: layout, manifest, scalers
    ensemble      a loaded ensemble: physical units in, predictions out (`Ensemble`, `RowBatch`)
    runtimes      where an ensemble runs (ONNX Runtime CPU/CUDA, PyTorch CUDA): `choose_runner`
    torch_runtime, graph, sst, residual_boost    the PyTorch model (training, export, GPU runtime)
    scaling, sensor_lag, dataset    preprocessing and training data
    train         `streamforge-train`: train, calibrate and export an ensemble
    training_config   `TrainingConfig`: every training setting, stated once (the CLI's flags come from it)
    repository    a folder of ensembles
    plant         the demo plant simulator (`streamforge-plant`)
    monitor/      the residual monitor: early warning from the twin's residuals
"""

from models.twin.ensemble import Ensemble, RowBatch
from models.twin.manifest import EnsembleManifest, read_manifest
from models.twin.repository import ModelRepository

__all__ = ["Ensemble", "EnsembleManifest", "ModelRepository", "RowBatch", "read_manifest"]
