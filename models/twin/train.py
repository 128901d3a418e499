"""Train a twin ensemble (SST Stage 1 + residual boost) from a CSV and write it to a model repository.

    python -m models.twin.train --csv data/demo/plant.csv \
        --boundary Temperature_boundary_1,Flow_boundary_1,... --target Temperature_target_1,... \
        --repository data/model_repository --model DemoPlant

Stage 1 learns boundary -> target; Stage 2 learns Stage 1's residuals (by default an MLP that also sees
Stage 1's prediction, models.twin.residual_boost); per target the boost is used only where it raises R² on
held-out rows by more than --delta-r2. Without `--boundary` the twin models normal operation from the
targets alone: each target is predicted from the others (leave-one-out, models.twin.graph).

The residual monitor is calibrated on predictions for rows the model did not train on. From
HOLDOUT_ROWS rows on, rows are split in time order (train / validation / test) and the validation rows
calibrate; with fewer (a plant's few hundred or thousand rows of history) they are cross-fitted: each of
`folds` time blocks is predicted by a twin trained on the other blocks, those out-of-fold residuals
calibrate, and the twin that is served is then trained on all rows. Model size, epochs and learning
rate follow the data size (`model_plan`) unless given, and every fit stops early on its last rows.
`--stage1-from` keeps an existing ensemble's Stage 1 and trains only a new boost (then only the boost is
cross-fitted: the kept Stage 1 may have seen every row). The result is a folder
Ensemble_<model>_<YYYYmmdd_HHMMSS> (see models.twin.ensemble), written whole or not at all.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.twin.dataset import SignalTable, check_trainable, load_csv, r2_per_column
from models.twin.graph import BOOST_WEIGHTS, LINEAR_WEIGHTS, STAGE1_WEIGHTS, EnsembleGraph, load_stage1
from models.twin.manifest import (
    MANIFEST_FILE,
    ONNX_FILE,
    SCALERS_FILE,
    EnsembleManifest,
    SignalMetrics,
    read_manifest,
    read_scalers,
)
from models.twin.monitor.calibrate import MIN_CALIBRATION_SAMPLES, calibrate, input_levels
from models.twin.monitor.calibration import MonitorCalibration
from models.twin.monitor.envelope import input_ranges
from models.twin.residual_boost import MLPBoostConfig, build_boost, sst_boost_config
from models.twin.scaling import StandardScaler
from models.twin.sensor_lag import first_order_lag, fitted_lags, remove_lag
from models.twin.sst import SSTConfig, StaticSensorTransformer, ridge_weights
from models.twin.training_config import SEEDS, TrainingConfig, add_arguments, from_arguments

MIN_TRAINING_ROWS = 2 * MIN_CALIBRATION_SAMPLES  # cross-fitting calibrates on every row
HOLDOUT_ROWS = 20_000  # from here on a validation split calibrates; below, out-of-fold predictions do
EARLY_STOP_FRACTION = 0.1  # the last rows of each training set decide when a fit stops
PATIENCE = 10  # epochs without a better early-stopping loss before a fit stops
COPIES_PER_ROW = 4  # leave-one-out training: targets hidden per row (all of them when there are fewer)
HIDE_EXTRA = 0.1  # leave-one-out training: each other input is hidden too with this probability (missing readings)
RIDGE_PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1)  # the linear fallback's penalty is chosen among these per target


@dataclass(frozen=True)
class ModelPlan:
    """Architecture and optimisation of one twin; `model_plan` chooses it from the data size."""

    d_model: int
    num_layers: int
    nhead: int
    epochs: int
    boost_epochs: int
    lr: float
    batch_size: int


def model_plan(rows: int) -> ModelPlan:
    """A Stage 1 the data can support: the demo plant's 3 x 128 Transformer from 50,000 rows, 2 x 64
    from 5,000, else 1 x 32 trained for more epochs at a higher rate (early stopping ends it sooner)."""
    if rows >= 50_000:
        return ModelPlan(128, 3, 8, epochs=30, boost_epochs=20, lr=1e-3, batch_size=256)
    if rows >= 5_000:
        return ModelPlan(64, 2, 4, epochs=60, boost_epochs=40, lr=1e-3, batch_size=128)
    return ModelPlan(32, 1, 4, epochs=100, boost_epochs=60, lr=2e-3, batch_size=128)


def fit(model: torch.nn.Module, inputs: tuple[np.ndarray, ...], y: np.ndarray, epochs: int, lr: float,
        batch_size: int, desc: str, seed: int, device: str = "cpu",
        validation: tuple[tuple[np.ndarray, ...], np.ndarray] | None = None) -> None:
    """Minimise MSE of `model(*inputs)` against y (NaN targets are not learnt) with AdamW and a one-cycle
    schedule on `device`, with a tqdm bar. With `validation` (inputs, y), keep the weights of the epoch
    with the lowest validation loss and stop after PATIENCE epochs without a better one."""
    generator = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, max(16, len(y) // 8))  # a few hundred rows still take several steps an epoch
    model.to(device)
    xt, yt = [torch.from_numpy(x).to(device) for x in inputs], torch.from_numpy(y).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(y) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 20), pct_start=0.1)
    best_loss, best_state, stale = math.inf, None, 0
    if validation is not None:  # the starting point (e.g. a linear fit) may already be the best
        best_loss, best_state = _held_out_loss(model, validation), copy.deepcopy(model.state_dict())
    with tqdm(total=epochs, desc=desc, unit="epoch", leave=False) as bar:
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(y), generator=generator).to(device)
            total = 0.0
            for start in range(0, len(y), batch_size):
                idx = order[start:start + batch_size]
                loss = masked_mse(model(*(x[idx] for x in xt)), yt[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(idx)
            bar.set_postfix(mse=f"{total / len(y):.4f}")
            bar.update()
            if validation is None:
                continue
            held_out = _held_out_loss(model, validation)
            if held_out < best_loss:
                best_loss, best_state, stale = held_out, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= PATIENCE:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()


def _held_out_loss(model: torch.nn.Module, validation: tuple[tuple[np.ndarray, ...], np.ndarray]) -> float:
    model.eval()
    return float(masked_mse(torch.from_numpy(infer(model, validation[0])), torch.from_numpy(validation[1])))


def masked_mse(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the known (non-NaN) targets."""
    known = ~torch.isnan(target)
    return ((predicted - torch.nan_to_num(target)) ** 2 * known).sum() / known.sum().clamp(min=1)


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


def split(n: int, val_fraction: float, test_fraction: float) -> tuple[slice, slice, slice]:
    """Time-ordered split: the first rows train, the next validate, the last test."""
    n_test, n_val = int(n * test_fraction), int(n * val_fraction)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(f"{n} rows are too few to split into train/validation/test")
    return slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)


def leave_one_out_rows(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training rows of a leave-one-out twin (x: the scaled targets as inputs, y: what to learn): up to
    COPIES_PER_ROW copies of each row, each hiding one target (NaN) - the only one it learns - and a few
    other inputs at random."""
    rng = np.random.default_rng(seed)
    n = x.shape[1]
    per_row = min(n, COPIES_PER_ROW)
    hidden = np.argsort(rng.random((len(x), n)), axis=1)[:, :per_row].reshape(-1)
    rows = np.repeat(np.arange(len(x)), per_row)
    copies = np.arange(len(rows))
    inputs = x[rows].copy()
    inputs[rng.random(inputs.shape) < HIDE_EXTRA] = np.nan
    inputs[copies, hidden] = np.nan
    targets = np.full_like(inputs, np.nan)
    targets[copies, hidden] = y[rows, hidden]
    return inputs.astype(np.float32), targets.astype(np.float32)


@dataclass
class FittedTwin:
    """Both stages of one fit, with the scalers and sensor lags they were fitted with."""

    stage1: StaticSensorTransformer
    boost: torch.nn.Module
    boost_config: dict
    x_scaler: StandardScaler
    y_scaler: StandardScaler
    lags: np.ndarray | None
    leave_one_out: bool
    linear: torch.nn.Linear | None = None  # leave-one-out: ridge of each target on the others (models.twin.graph)
    linear_only: np.ndarray | None = None  # [n_target] bool: targets the linear fallback serves

    def graph(self) -> EnsembleGraph:
        return EnsembleGraph(self.stage1, self.boost, self.leave_one_out, self.linear,
                             None if self.linear_only is None else torch.from_numpy(self.linear_only)).eval()

    @torch.inference_mode()
    def predict(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Stage 1, Stage 1 + boost) in physical units for raw input rows (the targets' readings for a
        leave-one-out twin): the steady state, which the sensors see through `lags` (models.twin.sensor_lag)."""
        stage1, residual = self.graph().cpu()(torch.from_numpy(self.x_scaler.transform(inputs)))
        return self.y_scaler.inverse(stage1.numpy()), self.y_scaler.inverse((stage1 + residual).numpy())

    @torch.inference_mode()
    def predict_linear(self, inputs: np.ndarray) -> np.ndarray:
        """The linear fallback's predictions for every target, physical units (a leave-one-out twin)."""
        every = replace(self, linear_only=np.ones(len(self.y_scaler.mean), bool))
        return every.predict(inputs)[0]


@dataclass(frozen=True)
class TwinRecipe:
    """How to fit a twin: the plan sized for the data, the run's configuration, and the Stage 1 it may keep."""

    plan: ModelPlan
    config: TrainingConfig
    seed: int
    device: str
    kept_stage1: tuple | None = None  # (stage1, x_scaler, y_scaler, lags) of an ensemble whose Stage 1 is kept

    def fit(self, boundary: np.ndarray, target: np.ndarray) -> FittedTwin:
        """A twin fitted to these rows (time order); the last EARLY_STOP_FRACTION of them decide when
        each stage stops. No boundary columns: a leave-one-out twin of the targets."""
        leave_one_out = boundary.shape[1] == 0
        inputs = target if leave_one_out else boundary
        n_stop = max(1, int(len(inputs) * EARLY_STOP_FRACTION))
        fit_rows, stop_rows = slice(0, len(inputs) - n_stop), slice(len(inputs) - n_stop, len(inputs))
        n_in, n_out = inputs.shape[1], target.shape[1]
        if self.kept_stage1 is not None:
            stage1, x_scaler, y_scaler, lags = self.kept_stage1
        else:
            x_scaler, y_scaler = StandardScaler.fit(inputs[fit_rows]), StandardScaler.fit(target[fit_rows])
        x, y = x_scaler.transform(inputs), y_scaler.transform(target)

        def examples(targets: np.ndarray, rows: slice, salt: int) -> tuple[np.ndarray, np.ndarray]:
            return (
                leave_one_out_rows(x[rows], targets[rows], self.seed + salt)
                if leave_one_out
                else (x[rows], targets[rows])
            )

        c = self.config
        if self.kept_stage1 is None:
            config = SSTConfig(n_in, n_out, self.plan.d_model, self.plan.nhead, self.plan.num_layers,
                               dropout=c.dropout, masked=leave_one_out, linear_skip=True)
            stage1, lags = self._stage1(config, x, y, lambda t, salt: (examples(t, fit_rows, salt),
                                                                        examples(t, stop_rows, salt + 1)),
                                        not leave_one_out and c.sensor_lag, fit_rows)
        stage1.to(self.device)
        y_steady = remove_lag(y, lags).astype(np.float32) if lags is not None else y
        boost_config = (MLPBoostConfig(n_in, n_out, c.boost_width, c.boost_layers, masked=leave_one_out).to_dict()
                        if c.boost == "mlp" else
                        sst_boost_config(SSTConfig(n_in, n_out, c.boost_d_model, max(1, self.plan.nhead // 2),
                                                   c.boost_layers, dropout=c.dropout, masked=leave_one_out)))
        boost = build_boost(boost_config)
        salt = SEEDS.boost_examples
        (fit_x, fit_y), (stop_x, stop_y) = examples(y_steady, fit_rows, salt), examples(y_steady, stop_rows, salt + 1)
        fit_s1, stop_s1 = infer(stage1, (fit_x,)), infer(stage1, (stop_x,))
        fit(boost, (fit_x, fit_s1), fit_y - fit_s1, self.plan.boost_epochs, self.plan.lr, self.plan.batch_size,
            f"stage 2 ({c.boost} residual boost)", self.seed + SEEDS.boost, self.device,
            validation=((stop_x, stop_s1), stop_y - stop_s1))
        linear = linear_fallback(x, y, fit_rows, stop_rows) if leave_one_out else None
        return FittedTwin(stage1.cpu(), boost.cpu(), boost_config, x_scaler, y_scaler, lags, leave_one_out, linear)

    def _stage1(self, config: SSTConfig, x: np.ndarray, y: np.ndarray, examples, sensor_lag: bool,
                fit_rows: slice) -> tuple[StaticSensorTransformer, np.ndarray | None]:
        """A Stage-1 SST, and the sensor lag per target (None without `sensor_lag`). `examples(targets,
        salt)` gives the (fit, early-stop) example sets for those targets.

        With `sensor_lag` it fits the readings for a quarter of the epochs, estimates each sensor's lag,
        and fits the steady state (the readings with the lag removed) for the rest."""
        stage1, plan = StaticSensorTransformer(config), self.plan

        def run(targets: np.ndarray, epochs: int, desc: str) -> None:
            (fit_x, fit_y), (stop_x, stop_y) = examples(targets, SEEDS.stage1_examples)
            stage1.fit_linear(torch.from_numpy(fit_x), torch.from_numpy(fit_y))
            fit(stage1, (fit_x,), fit_y, epochs, plan.lr, plan.batch_size, desc, self.seed, self.device,
                validation=((stop_x,), stop_y))

        if not sensor_lag:
            run(y, plan.epochs, "stage 1")
            return stage1, None
        first = max(1, plan.epochs // 4)
        run(y, first, "stage 1 (readings)")
        lags = fitted_lags(infer(stage1, (x[fit_rows],)), y[fit_rows])
        run(remove_lag(y, lags).astype(np.float32), max(1, plan.epochs - first), "stage 1 (steady state)")
        return stage1, lags


def linear_fallback(x: np.ndarray, y: np.ndarray, fit_rows: slice, stop_rows: slice) -> torch.nn.Linear:
    """A leave-one-out twin's linear fallback from the scaled readings x (= y, NaN where not measured): per
    target the ridge regression on the other readings whose penalty (of RIDGE_PENALTIES) predicts the
    early-stopping rows best, refitted on all rows."""
    n = x.shape[1]
    linear = torch.nn.Linear(n, n).double()
    with torch.no_grad():
        linear.weight.zero_(), linear.bias.zero_()
        for j in range(n):
            others = torch.from_numpy(x).double()
            others[:, j] = 0.0  # its own reading is hidden: the fit gives it no weight
            target = torch.from_numpy(y[:, j:j + 1]).double()
            best, chosen = math.inf, RIDGE_PENALTIES[0]
            for penalty in RIDGE_PENALTIES:
                weight, bias, _ = ridge_weights(others[fit_rows], target[fit_rows], penalty)
                predicted = torch.nan_to_num(others[stop_rows], nan=0.0) @ weight.T + bias
                known = ~torch.isnan(target[stop_rows])
                error = float(((predicted - torch.nan_to_num(target[stop_rows])) ** 2 * known).sum())
                if error < best:
                    best, chosen = error, penalty
            weight, bias, _ = ridge_weights(others, target, chosen)
            linear.weight[j], linear.bias[j] = weight[0], bias[0]
    return linear.float().eval()


def _kept_stage1(folder: Path, boundary_signals: list[str], target_signals: list[str]) -> tuple:
    """Stage 1, scalers and sensor lags (None: trained without) of an existing ensemble, checked against
    the signals to train."""
    manifest = read_manifest(folder)
    if manifest.boundary_signals != boundary_signals or manifest.target_signals != target_signals:
        raise ValueError(f"{folder.name} was trained on other signals than the ones given")
    return (load_stage1(folder, manifest), *read_scalers(folder), manifest.lags())


def cross_fit(recipe: TwinRecipe, boundary: np.ndarray, target: np.ndarray,
              folds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Out-of-fold (Stage 1, Stage 1 + boost, linear fallback or None) predictions: each of `folds`
    consecutive blocks of rows predicted by a twin fitted on the other blocks."""
    leave_one_out = boundary.shape[1] == 0
    stage1, boosted = np.empty_like(target), np.empty_like(target)
    linear = np.empty_like(target) if leave_one_out else None
    inputs = target if leave_one_out else boundary
    blocks = np.array_split(np.arange(len(target)), folds)
    for k, block in enumerate(tqdm(blocks, desc="cross-fitting", unit="fold")):
        rest = np.setdiff1d(np.arange(len(target)), block)
        twin = replace(recipe, seed=recipe.seed + SEEDS.fold_stride * (k + 1)).fit(boundary[rest], target[rest])
        stage1[block], boosted[block] = twin.predict(inputs[block])
        if leave_one_out:
            linear[block] = twin.predict_linear(inputs[block])
    return stage1, boosted, linear


def train_ensemble(table: SignalTable, boundary_signals: list[str], target_signals: list[str],
                   repository: Path, model_name: str, config: TrainingConfig = TrainingConfig(),
                   **overrides) -> Path:
    """Train both stages, choose the boost per target, calibrate the monitor on held-out predictions and
    write the ensemble folder; returns its path.

    `config` holds every setting (models.twin.training_config); `overrides` change fields of it by name, as
    `train_ensemble(..., epochs=5)`. `boundary_signals` empty: a leave-one-out twin of the targets (no
    sensor lag). Sizes left None follow `model_plan`. With `sensor_lag` (rows must be consecutive samples in
    time) a first-order lag per target is estimated after a quarter of the stage-1 epochs, and the rest fit
    the readings with it removed (models.twin.sensor_lag). `stage1_from` (an ensemble folder) reuses that
    ensemble's Stage 1, scalers and sensor lags and trains only a new boost.
    """
    c = config.with_overrides(**overrides)
    check_trainable(table, boundary_signals, target_signals, MIN_TRAINING_ROWS)
    torch.manual_seed(c.seed)
    rows = len(table.target)
    sizes = {f.name: getattr(c, f.name) for f in fields(ModelPlan) if getattr(c, f.name) is not None}
    plan = replace(model_plan(rows), **sizes)
    kept = _kept_stage1(Path(c.stage1_from), boundary_signals, target_signals) if c.stage1_from is not None else None
    device = c.device if c.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    recipe = TwinRecipe(plan, c, c.seed, device, kept)
    inputs = table.boundary if boundary_signals else table.target
    if rows >= HOLDOUT_ROWS:
        train, held_out, test = split(rows, c.val_fraction, c.test_fraction)
        twin = recipe.fit(table.boundary[train], table.target[train])
        stage1_pred, boosted_pred = twin.predict(inputs)
        linear_pred = twin.predict_linear(inputs) if twin.leave_one_out else None
        calibration = {"scheme": "holdout", "rows": held_out.stop - held_out.start}
    else:
        held_out, test = slice(0, rows), None
        stage1_pred, boosted_pred, linear_pred = cross_fit(recipe, table.boundary, table.target, c.folds)
        twin = recipe.fit(table.boundary, table.target)
        calibration = {"scheme": "cross-fit", "folds": c.folds, "rows": rows}
    actual = table.target

    def sensed(steady: np.ndarray) -> np.ndarray:
        """Predictions as the sensors see them (through the served twin's lags), to score them."""
        return steady if twin.lags is None else first_order_lag(steady, twin.lags)

    stage1_seen, boosted_seen = sensed(stage1_pred), sensed(boosted_pred)
    r2_s1 = r2_per_column(actual[held_out], stage1_seen[held_out])
    r2_boost = r2_per_column(actual[held_out], boosted_seen[held_out])
    use_boost = (r2_boost - r2_s1) > c.delta_r2
    if linear_pred is not None:  # the linear fallback serves the targets it predicted better out of fold
        r2_linear = r2_per_column(actual[held_out], linear_pred[held_out])
        linear = twin.linear_only = r2_linear > np.where(use_boost, r2_boost, r2_s1)
        for predicted in (stage1_pred, boosted_pred, stage1_seen, boosted_seen):  # (no sensor lag: seen = predicted)
            predicted[:, linear] = linear_pred[:, linear]
        r2_s1, r2_boost = np.where(linear, r2_linear, r2_s1), np.where(linear, r2_linear, r2_boost)
        use_boost &= ~linear
    ensemble_seen = np.where(use_boost, boosted_seen, stage1_seen)
    test_r2 = ((r2_per_column(actual[test], stage1_seen[test]), r2_per_column(actual[test], ensemble_seen[test]))
               if test is not None else None)
    metrics = {
        t: SignalMetrics(r2_stage1=float(r2_s1[i]), r2_ensemble=float(r2_boost[i] if use_boost[i] else r2_s1[i]),
                         delta_r2=float(r2_boost[i] - r2_s1[i]), boost_used=bool(use_boost[i]),
                         test_r2_stage1=None if test_r2 is None else float(test_r2[0][i]),
                         test_r2_ensemble=None if test_r2 is None else float(test_r2[1][i]))
        for i, t in enumerate(target_signals)
    }
    # the monitor lags the steady-state prediction itself: calibrate it on the steady state
    ensemble_pred = np.where(use_boost, boosted_pred, stage1_pred)
    monitor = calibrate(target_signals, ensemble_pred[held_out], actual[held_out], lags=twin.lags)
    monitor.inputs = input_ranges(boundary_signals, table.boundary)  # what the twin has seen, for `envelope`
    monitor.input_levels = input_levels(boundary_signals, table.boundary)  # normal operation's, for `input_level`
    training = {"rows": rows, "gap_rows_left_out": table.dropped_rows, "calibration": calibration,
                "epochs": 0 if kept is not None else plan.epochs, "boost_epochs": plan.boost_epochs,
                "d_model": plan.d_model, "num_layers": plan.num_layers, "lr": plan.lr, "batch_size": plan.batch_size,
                "seed": c.seed, "sensor_lag": twin.lags is not None, "boost": c.boost,
                "stage1_from": Path(c.stage1_from).name if c.stage1_from is not None else None}
    return write_ensemble(twin, boundary_signals, target_signals, Path(repository), model_name, metrics, use_boost,
                          c.delta_r2, training, monitor)


def write_ensemble(twin: FittedTwin, boundary_signals: list[str], target_signals: list[str], repository: Path,
                   model_name: str, metrics: dict[str, SignalMetrics], use_boost: np.ndarray, delta_r2: float,
                   training: dict, monitor: MonitorCalibration) -> Path:
    """Write Ensemble_<model>_<stamp> into a hidden `.partial` folder and rename it when complete."""
    stamp = datetime.now(timezone.utc)
    name = f"Ensemble_{model_name}_{stamp:%Y%m%d_%H%M%S}"
    final = repository / name
    if final.exists():
        raise FileExistsError(f"{final} exists")
    folder = repository / f".{name}.partial"  # renamed when complete: never a half-written ensemble
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        export_onnx(twin.graph(), len(twin.x_scaler.mean), folder / ONNX_FILE)
        torch.save(twin.stage1.state_dict(), folder / STAGE1_WEIGHTS)
        torch.save(twin.boost.state_dict(), folder / BOOST_WEIGHTS)
        linear_signals = [] if twin.linear_only is None else [t for t, u in zip(target_signals, twin.linear_only) if u]
        if linear_signals:
            torch.save(twin.linear.state_dict(), folder / LINEAR_WEIGHTS)
        (folder / SCALERS_FILE).write_text(json.dumps({"boundary": twin.x_scaler.to_dict(),
                                                       "target": twin.y_scaler.to_dict()}))
        manifest = EnsembleManifest(
            name=name, created_at=stamp.isoformat(), boundary_signals=boundary_signals, target_signals=target_signals,
            boost_signals=[t for t, u in zip(target_signals, use_boost) if u], delta_r2_threshold=delta_r2,
            metrics=metrics, stage1_config=twin.stage1.config.to_dict(), boost_config=twin.boost_config,
            training=training, monitor=monitor, linear_signals=linear_signals,
            sensor_lag=dict(zip(target_signals, twin.lags.tolist())) if twin.lags is not None else {},
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
    parser.add_argument("--boundary", default="",
                        help="comma-separated boundary (input) signal names; none: a twin of the targets alone, "
                             "each predicted from the others")
    parser.add_argument("--target", required=True, help="comma-separated target (output) signal names")
    parser.add_argument("--repository", type=Path, default=Path("data/model_repository"))
    parser.add_argument("--model", default="SST", help="model name used in Ensemble_<model>_<timestamp>")
    add_arguments(parser)
    args = parser.parse_args()
    boundary, target = [s for s in args.boundary.split(",") if s], args.target.split(",")
    table = load_csv(args.csv, boundary, target)
    if table.dropped_rows:
        print(f"{table.dropped_rows} rows with gaps (empty or NaN cells) left out; {len(table.target)} rows used")
    folder = train_ensemble(table, boundary, target, args.repository, args.model, from_arguments(args))
    manifest = read_manifest(folder)
    calibration = manifest.training["calibration"]
    print(f"wrote {folder}\nR² on held-out rows ({calibration['scheme']}, {calibration['rows']} rows):")
    for t, m in manifest.metrics.items():
        watched = "against the twin" if manifest.monitor.signals[t].follows_twin else "against its normal level"
        print(f"  {t:28s} stage 1 {m.r2_stage1:.4f}  stage 1 + boost {m.r2_stage1 + m.delta_r2:.4f}  "
              f"boost {'used' if m.boost_used else 'not used'}  sensor lag {manifest.sensor_lag.get(t, 0.0):.3f}  "
              f"monitored {watched}")


if __name__ == "__main__":
    main()
