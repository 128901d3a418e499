"""Train a twin ensemble (SST Stage 1 + residual boost) from a CSV and write it to a model repository.

    python -m models.train --csv data/demo/plant.csv \
        --boundary Temperature_boundary_1,Flow_boundary_1,... --target Temperature_target_1,... \
        --repository data/model_repository --model DemoPlant

Rows are split in time order (train / validation / test). Stage 1 learns boundary -> target; Stage 2
learns Stage 1's residuals (by default an MLP that also sees Stage 1's prediction, models.residual_boost);
per target the boost is used only where it raises validation R² by more than --delta-r2. `--stage1-from`
keeps an existing ensemble's Stage 1 and trains only a new boost (minutes on a CPU). The result is a folder Ensemble_<model>_<YYYYmmdd_HHMMSS> (see models.ensemble).
"""

from __future__ import annotations

import argparse
import math
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.dataset import SignalTable, check_trainable, load_csv, r2_per_column
from models.ensemble import (
    MANIFEST_FILE, ONNX_FILE, SCALERS_FILE, EnsembleManifest, SignalMetrics, read_manifest, read_scalers,
)
from models.monitor_calibration import MIN_CALIBRATION_SAMPLES, calibrate
from models.scaling import StandardScaler
from models.sensor_lag import first_order_lag, fitted_lags, remove_lag
from models.residual_boost import MLPBoostConfig, build_boost, sst_boost_config
from models.sst import SSTConfig, StaticSensorTransformer
from models.twin_graph import BOOST_WEIGHTS, STAGE1_WEIGHTS, EnsembleGraph, load_stage1


def fit(model: torch.nn.Module, inputs: tuple[np.ndarray, ...], y: np.ndarray, epochs: int, lr: float,
        batch_size: int, desc: str, seed: int, device: str = "cpu") -> None:
    """Minimise MSE of `model(*inputs)` against y with AdamW and a one-cycle schedule on `device`, with a
    tqdm bar per run."""
    generator = torch.Generator().manual_seed(seed)
    model.to(device)
    xt, yt = [torch.from_numpy(x).to(device) for x in inputs], torch.from_numpy(y).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(y) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    with tqdm(total=epochs, desc=desc, unit="epoch") as bar:
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator).to(device)
            total = 0.0
            for start in range(0, len(y), batch_size):
                idx = order[start:start + batch_size]
                loss = torch.nn.functional.mse_loss(model(*(x[idx] for x in xt)), yt[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(idx)
            bar.set_postfix(mse=f"{total / len(y):.4f}")
            bar.update()
    model.eval()


@torch.inference_mode()
def infer(model: torch.nn.Module, inputs: tuple[np.ndarray, ...], batch_size: int = 4096) -> np.ndarray:
    """Run `model(*inputs)` over the rows in batches on the device it lives on."""
    device = next(model.parameters()).device
    n = len(inputs[0])
    return np.concatenate([model(*(torch.from_numpy(x[i:i + batch_size]).to(device) for x in inputs)).cpu().numpy()
                           for i in range(0, n, batch_size)])


def export_onnx(graph: EnsembleGraph, n_boundary: int, path: Path) -> None:
    """Export both stages as one ONNX graph with a dynamic batch dimension."""
    graph.eval().cpu()
    example = torch.zeros(2, n_boundary)
    torch.onnx.export(
        graph, (example,), str(path), input_names=["boundary"], output_names=["stage1", "residual"],
        dynamic_axes={"boundary": {0: "batch"}, "stage1": {0: "batch"}, "residual": {0: "batch"}},
        opset_version=17, dynamo=False,
    )


def min_training_rows(val_fraction: float) -> int:
    """Rows needed so that the validation split can calibrate the residual monitor."""
    return math.ceil(MIN_CALIBRATION_SAMPLES / val_fraction) + 1


def split(n: int, val_fraction: float, test_fraction: float) -> tuple[slice, slice, slice]:
    """Time-ordered split: the first rows train, the next validate, the last test."""
    n_test, n_val = int(n * test_fraction), int(n * val_fraction)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(f"{n} rows are too few to split into train/validation/test")
    return slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)


def _reused_stage1(folder: Path, boundary_signals: list[str], target_signals: list[str]):
    """Stage 1, scalers and sensor lags (None: trained without) of an existing ensemble, checked against
    the signals to train."""
    manifest = read_manifest(folder)
    if manifest.boundary_signals != boundary_signals or manifest.target_signals != target_signals:
        raise ValueError(f"{folder.name} was trained on other signals than the ones given")
    return (load_stage1(folder, manifest), *read_scalers(folder), manifest.lags())


def _train_stage1(config: SSTConfig, x: np.ndarray, y: np.ndarray, sensor_lag: bool, epochs: int, lr: float,
                  batch_size: int, seed: int, device: str) -> tuple[StaticSensorTransformer, np.ndarray | None]:
    """A Stage-1 SST fitted to scaled training rows, and the sensor lag per target (None without `sensor_lag`).

    With `sensor_lag` it fits the readings for a quarter of the epochs, estimates each sensor's lag, and
    fits the steady state (the readings with the lag removed) for the rest.
    """
    stage1 = StaticSensorTransformer(config)
    if not sensor_lag:
        fit(stage1, (x,), y, epochs, lr, batch_size, "stage 1", seed, device)
        return stage1, None
    first = max(1, epochs // 4)
    fit(stage1, (x,), y, first, lr, batch_size, "stage 1 (readings)", seed, device)
    lags = fitted_lags(infer(stage1, (x,)), y)
    fit(stage1, (x,), remove_lag(y, lags).astype(np.float32), max(1, epochs - first), lr, batch_size,
        "stage 1 (steady state)", seed, device)
    return stage1, lags


def train_ensemble(table: SignalTable, boundary_signals: list[str], target_signals: list[str],
                   repository: Path, model_name: str, *, epochs: int = 30, boost_epochs: int = 20,
                   d_model: int = 128, num_layers: int = 3, nhead: int = 8, boost: str = "mlp",
                   boost_width: int = 256, boost_d_model: int = 64, boost_layers: int = 3, dropout: float = 0.1,
                   lr: float = 1e-3, batch_size: int = 256, delta_r2: float = 0.002, val_fraction: float = 0.15,
                   test_fraction: float = 0.15, seed: int = 0, sensor_lag: bool = True, device: str = "cpu",
                   stage1_from: Path | None = None) -> Path:
    """Train both stages, choose the boost per target, and write the ensemble folder; returns its path.

    With `sensor_lag` (rows must be consecutive samples in time) a first-order lag per target is estimated
    after a quarter of the stage-1 epochs, and the rest fit the readings with it removed (models.sensor_lag).
    `boost` is "mlp" or "sst" (models.residual_boost). `stage1_from` (an ensemble folder) reuses that
    ensemble's Stage 1, scalers and sensor lags and trains only a new boost on this table.
    """
    check_trainable(table, boundary_signals, target_signals, min_training_rows(val_fraction))
    torch.manual_seed(seed)
    train, val, test = split(len(table.boundary), val_fraction, test_fraction)
    if stage1_from is not None:
        stage1, x_scaler, y_scaler, lags = _reused_stage1(Path(stage1_from), boundary_signals, target_signals)
        x, y = x_scaler.transform(table.boundary), y_scaler.transform(table.target)
    else:
        x_scaler = StandardScaler.fit(table.boundary[train])
        y_scaler = StandardScaler.fit(table.target[train])
        x, y = x_scaler.transform(table.boundary), y_scaler.transform(table.target)
        config = SSTConfig(len(boundary_signals), len(target_signals), d_model, nhead, num_layers, dropout=dropout)
        stage1, lags = _train_stage1(config, x[train], y[train], sensor_lag, epochs, lr, batch_size, seed, device)
    stage1.to(device)
    y_steady = remove_lag(y, lags).astype(np.float32) if lags is not None else y
    stage1_pred = infer(stage1, (x,))
    residual = (y_steady - stage1_pred).astype(np.float32)

    boost_config = (MLPBoostConfig(len(boundary_signals), len(target_signals), boost_width, boost_layers).to_dict()
                    if boost == "mlp" else
                    sst_boost_config(SSTConfig(len(boundary_signals), len(target_signals), boost_d_model,
                                               max(1, nhead // 2), boost_layers, dropout=dropout)))
    boost_model = build_boost(boost_config)
    fit(boost_model, (x[train], stage1_pred[train]), residual[train], boost_epochs, lr, batch_size,
        f"stage 2 ({boost} residual boost)", seed + 1, device)
    boosted_pred = stage1_pred + infer(boost_model, (x, stage1_pred))

    def r2(part: slice, pred: np.ndarray) -> np.ndarray:
        """R² of the predictions as the sensors see them (through their lag)."""
        lagged = pred if lags is None else first_order_lag(pred, lags)
        return r2_per_column(table.target[part], y_scaler.inverse(lagged[part]))

    r2_val_s1, r2_val_boost = r2(val, stage1_pred), r2(val, boosted_pred)
    use_boost = (r2_val_boost - r2_val_s1) > delta_r2
    mask = use_boost.astype(np.float32)
    ensemble_pred = stage1_pred + (boosted_pred - stage1_pred) * mask
    r2_test_s1, r2_test_ens = r2(test, stage1_pred), r2(test, ensemble_pred)
    r2_val_ens = np.where(use_boost, r2_val_boost, r2_val_s1)
    metrics = {
        t: SignalMetrics(r2_stage1=float(r2_val_s1[i]), r2_ensemble=float(r2_val_ens[i]),
                         delta_r2=float(r2_val_boost[i] - r2_val_s1[i]), boost_used=bool(use_boost[i]),
                         test_r2_stage1=float(r2_test_s1[i]), test_r2_ensemble=float(r2_test_ens[i]))
        for i, t in enumerate(target_signals)
    }

    stamp = datetime.now(timezone.utc)
    name = f"Ensemble_{model_name}_{stamp:%Y%m%d_%H%M%S}"
    final = Path(repository) / name
    if final.exists():
        raise FileExistsError(f"{final} exists")
    folder = Path(repository) / f".{name}.partial"  # renamed when complete: never a half-written ensemble
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        export_onnx(EnsembleGraph(stage1, boost_model), len(boundary_signals), folder / ONNX_FILE)
        torch.save(stage1.state_dict(), folder / STAGE1_WEIGHTS)
        torch.save(boost_model.state_dict(), folder / BOOST_WEIGHTS)
        (folder / SCALERS_FILE).write_text(json.dumps({"boundary": x_scaler.to_dict(), "target": y_scaler.to_dict()}))
        manifest = EnsembleManifest(
            name=name, created_at=stamp.isoformat(), boundary_signals=boundary_signals, target_signals=target_signals,
            boost_signals=[t for t, u in zip(target_signals, use_boost) if u], delta_r2_threshold=delta_r2,
            metrics=metrics, stage1_config=stage1.config.to_dict(), boost_config=boost_config,
            training={"rows": len(table.boundary), "train_rows": train.stop - train.start,
                      "epochs": 0 if stage1_from is not None else epochs,
                      "boost_epochs": boost_epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
                      "sensor_lag": lags is not None, "boost": boost,
                      "stage1_from": Path(stage1_from).name if stage1_from is not None else None},
            sensor_lag=dict(zip(target_signals, lags.tolist())) if lags is not None else {},
            monitor=calibrate(target_signals, y_scaler.inverse(ensemble_pred[val]), table.target[val],
                              lags=lags),
        )
        (folder / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
        folder.rename(final)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description="Train an SST + residual-boost twin ensemble from a CSV.")
    parser.add_argument("--csv", type=Path, required=True, help="training data; a `timestamp` column is optional")
    parser.add_argument("--boundary", required=True, help="comma-separated boundary (input) signal names")
    parser.add_argument("--target", required=True, help="comma-separated target (output) signal names")
    parser.add_argument("--repository", type=Path, default=Path("data/model_repository"))
    parser.add_argument("--model", default="SST", help="model name used in Ensemble_<model>_<timestamp>")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--boost-epochs", type=int, default=20)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--boost", choices=["mlp", "sst"], default="mlp", help="residual boost kind (models.residual_boost)")
    parser.add_argument("--boost-width", type=int, default=256, help="hidden units of an MLP boost")
    parser.add_argument("--boost-layers", type=int, default=3, help="hidden layers (MLP) or encoder layers (SST) of the boost")
    parser.add_argument("--boost-d-model", type=int, default=64, help="d_model of an SST boost")
    parser.add_argument("--stage1-from", type=Path, default=None,
                        help="ensemble folder whose Stage 1, scalers and sensor lags to reuse: train only a new boost")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--delta-r2", type=float, default=0.002, help="minimum validation R² gain to use the boost")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--static", action="store_true",
                        help="fit the readings as they are, without estimating sensor lags (rows need not be consecutive)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    boundary, target = args.boundary.split(","), args.target.split(",")
    table = load_csv(args.csv, boundary, target)
    if table.dropped_rows:
        print(f"{table.dropped_rows} rows with gaps (empty or NaN cells) left out; {len(table.boundary)} rows used")
    folder = train_ensemble(table, boundary, target, args.repository, args.model, epochs=args.epochs,
                            boost_epochs=args.boost_epochs, d_model=args.d_model, num_layers=args.layers,
                            nhead=args.heads, boost=args.boost, boost_width=args.boost_width,
                            boost_d_model=args.boost_d_model, boost_layers=args.boost_layers, dropout=args.dropout,
                            lr=args.lr, batch_size=args.batch_size, delta_r2=args.delta_r2, seed=args.seed,
                            sensor_lag=not args.static, device=args.device, stage1_from=args.stage1_from)
    manifest = EnsembleManifest.model_validate_json((folder / MANIFEST_FILE).read_text())
    print(f"wrote {folder}")
    for t, m in manifest.metrics.items():
        print(f"  {t:28s} R² stage1 {m.r2_stage1:.4f}  ensemble {m.r2_ensemble:.4f}  boost {'yes' if m.boost_used else 'no'}"
              f"  sensor lag {manifest.sensor_lag.get(t, 0.0):.3f}")


if __name__ == "__main__":
    main()
