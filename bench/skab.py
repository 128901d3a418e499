"""Early warning on a real testbed: SKAB (Skoltech Anomaly Benchmark) streamed through the real server.

    python -m bench.skab                 # about 15 minutes on 2 cores
    python -m bench.skab --runs 4        # a quick look at the first runs

Protocol - the benchmark's own for outlier detection (its leaderboard notebooks): every run of
`valve1/`, `valve2/` and `other/` (34) starts in normal operation, and its first 400 rows (400 s) are
the only training data for that run. Per run, a twin of the 8 sensors is trained on them (target
signals only: each sensor predicted from the others, calibrated out of fold; `python -m models.twin.train`
with no boundary signals), and the whole run is streamed through a server started from
configs/serve.yaml, in `predict_batch` messages with `actual_signals`. A sample counts as flagged while
any alert of its session is open. F1, FAR and MAR are per sample over the rows after the first 400 of
every run (`*_all_rows`: over whole runs, for reference only). The same split gives the
PCA T²+Q baseline (85% of the variance, 99% limits: F for T², Jackson-Mudholkar for Q).

The board's count is the rows after the first 400 of every run (SKAB's `core/utils.py` splits each run
with `train_test_split(train_size=400, shuffle=False)` and its notebooks score the test part only); the
all-rows figures are kept for reference, labelled as such. An always-alarm detector on the same rows is
the reference an F1 has to beat.

Also: `anomaly-free.csv` (2.6 h of normal operation) trained on its first 400 rows and streamed whole,
and the normal rows of each run between row 400 and its first fault: the alarm system's figures after
ISA-18.2 (models.twin.monitor.alarm_figures: alerts per 10 minutes of plant time, share of time with a
standing alert, stale alerts - open longer than STALE_AFTER_S -, chattering, flood periods, the top-10
share); and the delay from each fault's first row to the first alert opened within it.

Writes bench/results/skab.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import NormalDist

import numpy as np
import websockets
from tqdm import tqdm

from bench.run_suite import SCRATCH, streamforge_server, write_report
from models.twin.monitor.alarm_figures import AlarmFigures, AlertChange, alarm_figures
from serve_app.settings import PROJECT_ROOT, ray_environment

DATASET = PROJECT_ROOT.parent / "shared" / "datasets" / "skab"
TRAIN_ROWS = 400  # the benchmark's protocol: each run's first 400 rows are its training data
BATCH = 100
STALE_AFTER_S = 1800.0  # SKAB's runs last 20 minutes to 2.6 hours: ISA-18.2's 24 h would never apply
STREAM = "/api/v1/inference/stream"


@dataclass
class Run:
    """One SKAB CSV: sensor columns, timestamps and the fault labels."""

    name: str
    signals: list[str]
    timestamps: list[str]
    values: np.ndarray  # [n, 8]
    anomaly: np.ndarray  # [n] bool

    @classmethod
    def read(cls, path: Path, name: str | None = None) -> "Run":
        """A SKAB CSV (`;`-separated); `name` defaults to the file's name."""
        with path.open(newline="") as f:
            reader = csv.reader(f, delimiter=";")
            header = next(reader)
            rows = [r for r in reader if r]
        signals = [h for h in header[1:] if h not in ("anomaly", "changepoint")]
        values = np.array([[float(c) for c in r[1:1 + len(signals)]] for r in rows])
        anomaly = (np.array([float(r[header.index("anomaly")]) for r in rows]) > 0
                   if "anomaly" in header else np.zeros(len(rows), bool))
        return cls(name or path.name, signals, [r[0] for r in rows], values, anomaly)

    def plant_minutes(self, rows: slice) -> float:
        first, last = (datetime.fromisoformat(self.timestamps[i]) for i in (rows.start, rows.stop - 1))
        return (last - first).total_seconds() / 60.0 + 1 / 60

    def seconds(self, row: int) -> float:
        """Plant time of a row (its timestamp in seconds; one sample period past the last row for the end)."""
        if row >= len(self.timestamps):
            return self.seconds(len(self.timestamps) - 1) + 1.0
        return datetime.fromisoformat(self.timestamps[row]).timestamp()

    def alarm_figures(self, changes: list[tuple[int, tuple[str, str], bool]], rows: slice) -> AlarmFigures:
        """ISA-18.2 figures of the alert changes (row, (signal, kind), opened) over `rows`."""
        stream = [AlertChange(self.seconds(row), signal, kind, opened) for row, (signal, kind), opened in changes]
        return alarm_figures(stream, self.seconds(rows.start), self.seconds(rows.stop), STALE_AFTER_S)


def runs(dataset: Path = DATASET, limit: int | None = None) -> tuple[list[Run], Run]:
    """(the 34 fault runs in a fixed order, the anomaly-free run) of SKAB's `data/` folder."""
    paths = sorted((p for p in dataset.glob("*/*.csv") if p.parent.name != "anomaly-free"),
                   key=lambda p: (p.parent.name, int(p.stem)))
    free = dataset / "anomaly-free" / "anomaly-free.csv"
    return [Run.read(p, str(p.relative_to(dataset))) for p in paths[:limit]], Run.read(free, "anomaly-free.csv")


def train(run: Run, repository: Path) -> tuple[str, dict]:
    """Train the run's twin on its first TRAIN_ROWS rows; (ensemble name, training summary)."""
    import torch

    from models.twin.dataset import SignalTable
    from models.twin.manifest import read_manifest
    from models.twin.train import train_ensemble
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = slice(0, TRAIN_ROWS)
    table = SignalTable(np.empty((TRAIN_ROWS, 0)), run.values[rows], run.timestamps[rows])
    folder = train_ensemble(table, [], run.signals, repository, "SKAB" + run.name.replace("/", "").replace(".csv", ""))
    manifest = read_manifest(folder)
    return manifest.name, {"seconds": round(time.perf_counter() - started, 1),
                           "r2_stage1": {t: round(m.r2_stage1, 3) for t, m in manifest.metrics.items()},
                           "r2_ensemble": {t: round(m.r2_ensemble, 3) for t, m in manifest.metrics.items()},
                           "follows_twin": {t: s.follows_twin for t, s in manifest.monitor.signals.items()}}


def flagged_rows(rows: int, changes: list[tuple[int, tuple[str, str], bool]]) -> np.ndarray:
    """Per row, whether an alert was open: from (row, (signal, kind), opened) in sample order; an alert
    still open at the end flags the rest of the run."""
    flagged = np.zeros(rows, dtype=bool)
    since: dict[tuple[str, str], int] = {}
    for row, key, opened in changes:
        if opened:
            since[key] = row
        elif key in since:
            flagged[since.pop(key):row] = True
    for row in since.values():
        flagged[row:] = True
    return flagged


async def stream(url: str, ensemble: str, run: Run) -> tuple[np.ndarray, list[dict], list]:
    """Stream the run through the server; (flagged per sample, the alerts opened, every alert change as
    (row, (signal, kind), opened))."""
    index = {ts: i for i, ts in enumerate(run.timestamps)}
    changes: list[tuple[int, tuple[str, str], bool]] = []
    opened: list[dict] = []
    def record(message: dict) -> None:
        if message["type"] == "error":
            raise RuntimeError(message)
        if message["type"] not in ("alert", "alert_cleared"):
            return
        alert, at = message["data"], index[message["data"]["sample"]]
        changes.append((at, (alert["signal"], alert["kind"]), message["type"] == "alert"))
        if message["type"] == "alert":
            opened.append({**alert, "row": at})

    async def until(kind: str) -> None:
        """Record every message up to the next one of `kind` (a batch's alerts follow its reply)."""
        while (message := json.loads(await ws.recv()))["type"] != kind:
            record(message)

    async with websockets.connect(url + STREAM, max_size=2 ** 24) as ws:
        await ws.send(json.dumps({"type": "config", "data": {"ensemble_name": ensemble, "mode": "batch",
                                                             "batch_size": BATCH, "include_metadata": False}}))
        await until("config_ack")
        for start in range(0, len(run.timestamps), BATCH):
            part = slice(start, min(start + BATCH, len(run.timestamps)))
            actual = [dict(zip(run.signals, row)) for row in run.values[part].tolist()]
            await ws.send(json.dumps({"type": "predict_batch", "data": {"actual_signals": actual,
                                                                         "timestamps": run.timestamps[part]}}))
            await until("prediction_batch")
        await ws.send(json.dumps({"type": "ping"}))
        await until("pong")
    return flagged_rows(len(run.timestamps), changes), opened, changes


def pca_t2_q(train_rows: np.ndarray, values: np.ndarray, variance: float = 0.85, alpha: float = 0.01) -> np.ndarray:
    """The classical PCA monitor: flagged where T² exceeds its F-distribution limit or Q (SPE) its
    Jackson-Mudholkar limit, both fitted on `train_rows`."""
    from scipy import stats
    mean, std = train_rows.mean(axis=0), train_rows.std(axis=0) + 1e-12
    z_train, z = (train_rows - mean) / std, (values - mean) / std
    _, s, vt = np.linalg.svd(z_train, full_matrices=False)
    eigen = s ** 2 / (len(z_train) - 1)
    k = int(np.searchsorted(np.cumsum(eigen) / eigen.sum(), variance) + 1)
    n = len(z_train)
    scores = z @ vt[:k].T
    t2 = (scores ** 2 / eigen[:k]).sum(axis=1)
    t2_limit = k * (n - 1) * (n + 1) / (n * (n - k)) * stats.f.ppf(1 - alpha, k, n - k)
    q = ((z - scores @ vt[:k]) ** 2).sum(axis=1)
    theta = [(eigen[k:] ** i).sum() for i in (1, 2, 3)]
    h0 = 1 - 2 * theta[0] * theta[2] / (3 * theta[1] ** 2)
    c = NormalDist().inv_cdf(1 - alpha)
    q_limit = theta[0] * (c * np.sqrt(2 * theta[1] * h0 ** 2) / theta[0] + 1
                          + theta[1] * h0 * (h0 - 1) / theta[0] ** 2) ** (1 / h0)
    return (t2 > t2_limit) | (q > q_limit)


def scores(flagged: np.ndarray, truth: np.ndarray) -> dict:
    """Per-sample F1, false alarm rate and missed alarm rate (the leaderboard's binary metrics)."""
    tp, fp = int((flagged & truth).sum()), int((flagged & ~truth).sum())
    fn, tn = int((~flagged & truth).sum()), int((~flagged & ~truth).sum())
    return {"f1": round(2 * tp / max(2 * tp + fp + fn, 1), 4), "far": round(fp / max(fp + tn, 1), 4),
            "mar": round(fn / max(fn + tp, 1), 4)}


def first_fault(run: Run) -> tuple[int, int] | None:
    """(first, last + 1) row of the run's first labelled fault after the training rows."""
    rows = np.flatnonzero(run.anomaly[TRAIN_ROWS:])
    if not len(rows):
        return None
    start = TRAIN_ROWS + int(rows[0])
    end = start + int(np.argmin(run.anomaly[start:])) if not run.anomaly[start:].all() else len(run.anomaly)
    return start, end


def pooled(figures: list[AlarmFigures]) -> dict:
    """Alarm figures of several windows as one: counts summed, rates and shares weighted by plant time."""
    minutes = sum(f.plant_minutes for f in figures)
    if not minutes:
        return {}

    def weighted(field: str) -> float:
        return round(sum(getattr(f, field) * f.plant_minutes for f in figures) / minutes, 4)
    opened = sum(f.alerts_opened for f in figures)
    return {"windows": len(figures), "plant_minutes": round(minutes, 1), "alerts_opened": opened,
            "alerts_per_10min": round(10 * opened / minutes, 4), "standing_share": weighted("standing_share"),
            "stale": sum(f.stale for f in figures), "chattering": sum(f.chattering for f in figures),
            "flood_share": weighted("flood_share")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DATASET, help="SKAB's data folder")
    parser.add_argument("--runs", type=int, default=None, help="only the first N fault runs")
    parser.add_argument("--out", default="skab.json")
    args = parser.parse_args()
    fault_runs, normal_run = runs(args.dataset, args.runs)
    every = [*fault_runs, normal_run]
    repository = SCRATCH / "skab-repository"
    repository.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    os.environ["TQDM_DISABLE"] = "1"  # the training workers' own bars; this process's bar is made already
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        trained = list(tqdm(pool.map(train, every, [repository] * len(every)), total=len(every),
                            desc="training twins", unit="run"))
    training_minutes = (time.perf_counter() - started) / 60

    async def stream_all(url: str) -> list[tuple[np.ndarray, list[dict], list]]:
        return [await stream(url, name, run) for (name, _), run in tqdm(list(zip(trained, every)),
                                                                       desc="streaming", unit="run")]

    with streamforge_server("skab.log", ray_environment(), args={"twin": {"model_repository": str(repository)}}) as url:
        streamed = asyncio.run(stream_all(url))

    test = slice(TRAIN_ROWS, None)
    per_run, delays, missed, normal_alerts, normal_minutes, quiet_stretches, stretches = [], [], 0, 0, 0.0, 0, 0
    kinds: dict[str, int] = {}
    ours, ours_all, pca, pca_all, truth, truth_all = [], [], [], [], [], []
    normal_figures: list[AlarmFigures] = []  # the normal rows of each fault run between row 400 and its fault
    for run, (flagged, opened, changes), (_, training) in zip(fault_runs, streamed, trained):
        baseline = pca_t2_q(run.values[:TRAIN_ROWS], run.values)
        ours.append(flagged[test]), pca.append(baseline[test]), truth.append(run.anomaly[test])
        ours_all.append(flagged), pca_all.append(baseline), truth_all.append(run.anomaly)
        for alert in opened:
            kinds[alert["kind"]] = kinds.get(alert["kind"], 0) + 1
        fault = first_fault(run)
        delay = None
        if fault is not None:
            inside = [a["row"] for a in opened if fault[0] <= a["row"] < fault[1]]
            delay = int(min(inside) - fault[0]) if inside else None
            missed += delay is None
            if delay is not None:
                delays.append(delay)
            if fault[0] > TRAIN_ROWS:  # normal rows between training and the fault
                alerts_before = sum(TRAIN_ROWS <= a["row"] < fault[0] for a in opened)
                normal_alerts += alerts_before
                normal_minutes += run.plant_minutes(slice(TRAIN_ROWS, fault[0]))
                quiet_stretches, stretches = quiet_stretches + (alerts_before == 0), stretches + 1
                normal_figures.append(run.alarm_figures(changes, slice(TRAIN_ROWS, fault[0])))
        per_run.append({"run": run.name, **scores(flagged[test], run.anomaly[test]),
                        "pca": scores(baseline[test], run.anomaly[test]), "alerts_opened": len(opened),
                        "delay_s": delay, "training_s": training["seconds"]})
    flagged, opened, changes = streamed[-1]
    free_figures = normal_run.alarm_figures(changes, slice(TRAIN_ROWS, len(normal_run.timestamps)))
    free_minutes = normal_run.plant_minutes(slice(TRAIN_ROWS, len(normal_run.timestamps)))
    free_alerts = sum(a["row"] >= TRAIN_ROWS for a in opened)
    whole = scores(np.concatenate(ours), np.concatenate(truth))
    whole_all = scores(np.concatenate(ours_all), np.concatenate(truth_all))
    baseline = scores(np.concatenate(pca), np.concatenate(truth))
    baseline_all = scores(np.concatenate(pca_all), np.concatenate(truth_all))
    always = scores(np.ones(sum(len(t) for t in truth), dtype=bool), np.concatenate(truth))
    r2 = np.array([list(t["r2_ensemble"].values()) for _, t in trained[:-1]])
    results = {
        "protocol": "per run: train on the first 400 rows (normal), stream the whole run with actual_signals; "
                    "scored per sample on the rows after 400 of the 34 runs of valve1, valve2, other (the "
                    "board's count); *_all_rows: whole runs, for reference only",
        "runs": len(fault_runs), "test_samples": int(sum(len(t) for t in truth)),
        "anomalous_share_of_test_samples": round(float(np.concatenate(truth).mean()), 4),
        **whole, **{f"{k}_all_rows": v for k, v in whole_all.items()},
        "always_alarm": always,
        "pca_f1": baseline["f1"], "pca_far": baseline["far"], "pca_mar": baseline["mar"],
        **{f"pca_{k}_all_rows": v for k, v in baseline_all.items()},
        "alerts_per_10min_normal": round(10 * free_alerts / free_minutes, 3),
        "anomaly_free": {"plant_minutes": round(free_minutes, 1), "alerts_opened": free_alerts,
                         "samples_flagged": round(float(flagged[TRAIN_ROWS:].mean()), 4)},
        "alarm_figures": {"stale_after_s": STALE_AFTER_S, "anomaly_free": free_figures.to_dict(),
                          "normal_rows_of_fault_runs": pooled(normal_figures)},
        "alerts_per_10min_normal_rows_of_fault_runs": round(10 * normal_alerts / max(normal_minutes, 1e-9), 3),
        "normal_stretches_of_fault_runs_without_an_alert": f"{quiet_stretches} of {stretches}",
        "detection_delay_s": {"median": float(np.median(delays)) if delays else None,
                              "p90": float(np.percentile(delays, 90)) if delays else None,
                              "detected": len(delays), "missed": missed},
        "alerts_opened_by_kind": kinds,
        "twin_r2_median_per_signal": dict(zip(fault_runs[0].signals, np.round(np.median(r2, axis=0), 3).tolist())),
        "runs_monitored_against_the_twin": {signal: sum(t["follows_twin"][signal] for _, t in trained[:-1])
                                            for signal in fault_runs[0].signals},
        "training_minutes": round(training_minutes, 1),
        "per_run": per_run,
    }
    write_report(args.out, results, "per_run")


if __name__ == "__main__":
    main()
