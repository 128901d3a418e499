"""Train a twin ensemble (SST Stage 1 + residual boost) from a CSV and write it to a model repository.

    python -m models.train --csv data/demo/plant.csv \
        --boundary Temperature_boundary_1,Flow_boundary_1,... --target Temperature_target_1,... \
        --repository data/model_repository --model DemoPlant

Rows are split in time order (train / validation / test). Stage 1 learns boundary -> target; Stage 2
learns Stage 1's residuals; per target the boost is used only where it raises validation R² by more
than --delta-r2. The result is a folder Ensemble_<model>_<YYYYmmdd_HHMMSS> (see models.ensemble).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.dataset import SignalTable, load_csv, r2_per_column
from models.ensemble import MANIFEST_FILE, ONNX_FILE, SCALERS_FILE, EnsembleManifest, SignalMetrics
from models.monitor_calibration import calibrate
from models.scaling import StandardScaler
from models.sensor_lag import first_order_lag, fitted_lags, remove_lag
from models.sst import EnsembleGraph, SSTConfig, StaticSensorTransformer


def fit(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, batch_size: int,
        desc: str, seed: int, device: str = "cpu") -> None:
    """Minimise MSE with AdamW and a one-cycle schedule on `device`, with a tqdm bar per run."""
    generator = torch.Generator().manual_seed(seed)
    model.to(device)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    with tqdm(total=epochs, desc=desc, unit="epoch") as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator).to(device)
            total = 0.0
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                loss = torch.nn.functional.mse_loss(model(xt[idx]), yt[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(idx)
            bar.set_postfix(mse=f"{total / len(x):.4f}")
            bar.update()
    model.eval()


@torch.inference_mode()
def infer(model: torch.nn.Module, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Run `model` over rows of x in batches on the device it lives on."""
    device = next(model.parameters()).device
    return np.concatenate([model(torch.from_numpy(x[i:i + batch_size]).to(device)).cpu().numpy()
                           for i in range(0, len(x), batch_size)])


def export_onnx(graph: EnsembleGraph, n_boundary: int, path: Path) -> None:
    """Export both stages as one ONNX graph with a dynamic batch dimension."""
    graph.eval().cpu()
    example = torch.zeros(2, n_boundary)
    torch.onnx.export(
        graph, (example,), str(path), input_names=["boundary"], output_names=["stage1", "residual"],
        dynamic_axes={"boundary": {0: "batch"}, "stage1": {0: "batch"}, "residual": {0: "batch"}},
        opset_version=17, dynamo=False,
    )


def split(n: int, val_fraction: float, test_fraction: float) -> tuple[slice, slice, slice]:
    """Time-ordered split: the first rows train, the next validate, the last test."""
    n_test, n_val = int(n * test_fraction), int(n * val_fraction)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(f"{n} rows are too few to split into train/validation/test")
    return slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)


def train_ensemble(table: SignalTable, boundary_signals: list[str], target_signals: list[str],
                   repository: Path, model_name: str, *, epochs: int = 30, boost_epochs: int = 20,
                   d_model: int = 128, num_layers: int = 3, nhead: int = 8, boost_d_model: int = 64,
                   boost_layers: int = 2, dropout: float = 0.1, lr: float = 1e-3, batch_size: int = 256, delta_r2: float = 0.002,
                   val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0, sensor_lag: bool = True,
                   device: str = "cpu") -> Path:
    """Train both stages, choose the boost per target, and write the ensemble folder; returns its path.

    With `sensor_lag` (rows must be consecutive samples in time) a first-order lag per target is estimated
    after a quarter of the stage-1 epochs, and the rest fit the readings with it removed (models.sensor_lag).
    """
    torch.manual_seed(seed)
    train, val, test = split(len(table.boundary), val_fraction, test_fraction)
    x_scaler = StandardScaler.fit(table.boundary[train])
    y_scaler = StandardScaler.fit(table.target[train])
    x, y = x_scaler.transform(table.boundary), y_scaler.transform(table.target)

    stage1_config = SSTConfig(len(boundary_signals), len(target_signals), d_model, nhead, num_layers, dropout=dropout)
    stage1 = StaticSensorTransformer(stage1_config)
    lags = np.zeros(len(target_signals))
    if sensor_lag:  # fit the readings first, estimate each sensor's lag, then fit the steady state
        first = max(1, epochs // 4)
        fit(stage1, x[train], y[train], first, lr, batch_size, "stage 1 (readings)", seed, device)
        lags = fitted_lags(infer(stage1, x[train]), y[train])
        y_steady = remove_lag(y, lags).astype(np.float32)
        fit(stage1, x[train], y_steady[train], max(1, epochs - first), lr, batch_size, "stage 1 (steady state)",
            seed, device)
    else:
        y_steady = y
        fit(stage1, x[train], y[train], epochs, lr, batch_size, "stage 1", seed, device)
    stage1_pred = infer(stage1, x)
    residual = (y_steady - stage1_pred).astype(np.float32)

    boost_config = SSTConfig(len(boundary_signals), len(target_signals), boost_d_model, max(1, nhead // 2), boost_layers,
                           dropout=dropout)
    boost = StaticSensorTransformer(boost_config)
    fit(boost, x[train], residual[train], boost_epochs, lr, batch_size, "stage 2 (residual boost)", seed + 1, device)
    boosted_pred = stage1_pred + infer(boost, x)

    def r2(part: slice, pred: np.ndarray) -> np.ndarray:
        """R² of the predictions as the sensors see them (through their lag)."""
        return r2_per_column(table.target[part], y_scaler.inverse(first_order_lag(pred, lags)[part]))

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
    folder = Path(repository) / name
    folder.mkdir(parents=True, exist_ok=False)
    export_onnx(EnsembleGraph(stage1, boost), len(boundary_signals), folder / ONNX_FILE)
    torch.save(stage1.state_dict(), folder / "stage1.pt")
    torch.save(boost.state_dict(), folder / "boost.pt")
    (folder / SCALERS_FILE).write_text(json.dumps({"boundary": x_scaler.to_dict(), "target": y_scaler.to_dict()}))
    manifest = EnsembleManifest(
        name=name, created_at=stamp.isoformat(), boundary_signals=boundary_signals, target_signals=target_signals,
        boost_signals=[t for t, u in zip(target_signals, use_boost) if u], delta_r2_threshold=delta_r2,
        metrics=metrics, stage1_config=stage1_config.to_dict(), boost_config=boost_config.to_dict(),
        training={"rows": len(table.boundary), "train_rows": train.stop - train.start, "epochs": epochs,
                  "boost_epochs": boost_epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
                  "sensor_lag": sensor_lag},
        sensor_lag=dict(zip(target_signals, lags.tolist())) if sensor_lag else {},
        monitor=calibrate(target_signals, y_scaler.inverse(ensemble_pred[val]), table.target[val],
                          lags=lags if sensor_lag else None),
    )
    (folder / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
    return folder


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
    folder = train_ensemble(table, boundary, target, args.repository, args.model, epochs=args.epochs,
                            boost_epochs=args.boost_epochs, d_model=args.d_model, num_layers=args.layers,
                            nhead=args.heads, dropout=args.dropout, lr=args.lr, batch_size=args.batch_size, delta_r2=args.delta_r2,
                            seed=args.seed, sensor_lag=not args.static, device=args.device)
    manifest = EnsembleManifest.model_validate_json((folder / MANIFEST_FILE).read_text())
    print(f"wrote {folder}")
    for t, m in manifest.metrics.items():
        print(f"  {t:28s} R² stage1 {m.r2_stage1:.4f}  ensemble {m.r2_ensemble:.4f}  boost {'yes' if m.boost_used else 'no'}"
              f"  sensor lag {manifest.sensor_lag.get(t, 0.0):.3f}")


if __name__ == "__main__":
    main()
