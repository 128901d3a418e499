"""Application settings: the `args` of configs/serve.yaml, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from serve_app.web.auth import AuthSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FRONTEND = PROJECT_ROOT / "frontend"


def ray_environment(path: Path = PROJECT_ROOT / "configs" / "serve.env") -> dict[str, str]:
    """The NAME=value lines of configs/serve.env: Ray Serve settings that must be set before Ray starts."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}




def project_path(path: str) -> Path:
    """Relative paths in settings are relative to the project folder, wherever Ray starts a replica."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


class EnrollmentSettings(BaseModel):
    """Teaching the store detector new products (serve_app.store.enrollment, docs/store.md)."""

    real_scenes: str = Field(
        "data/real_scenes", description="the real-scene corpus (python -m models.store.real_scenes)"
    )
    work_dir: str = Field("data/enrollment", description="training jobs' scratch folders")
    cpus: float = Field(0.5, gt=0, description="Ray CPUs a training job reserves (it uses every core it finds)")
    min_photos: int = Field(5, ge=2)
    max_photos: int = Field(20, ge=2)
    photo_side: int = Field(640, ge=64, description="uploaded photos are scaled down to this longest side")
    # the training plan (models.store.train.TrainingPlan): sized for ~17 minutes on 2 CPU cores
    rendered: int = Field(150, ge=0)
    composites: int = Field(450, ge=1)
    negatives: int = Field(150, ge=0, description="real training photos with nothing labeled")
    hard_negatives: int = Field(200, ge=0, description="crops of training photos the live model sees products in")
    replay: int = Field(
        400, ge=0, description="of the hard negatives the live model was taught, train on this many again"
    )
    val: int = Field(60, ge=3)
    test: int = Field(200, ge=1)
    epochs: int = Field(24, ge=1)
    freeze: int = Field(11, ge=0, description="the live model's first layers kept as they are (11: its backbone)")
    batch: int = Field(32, ge=1)
    # the quality gate (models.store.enroll.GateLimits)
    new_class_map50: float = Field(0.9, ge=0, le=1)
    max_class_drop: float = Field(0.02, ge=0, le=1)
    max_phantom_increase: float = Field(0.0, ge=0, description="phantoms per 1,000 held-out real frames")


class AppSettings(BaseModel):
    """Tunables of the StreamForge application (deployment sizes live in the Serve config)."""

    model_repository: str = "data/model_repository"
    results_dir: str = "data/results"
    session_shards: int = Field(2, ge=1, le=256)
    history_limit: int = Field(10_000, ge=0, description="samples kept per twin session")
    session_ttl_s: float = Field(300.0, gt=0, description="how long a disconnected session can be resumed")
    session_flush_interval_s: float = Field(0.1, gt=0, description="ingress -> session shards, batched")
    session_persist_interval_s: float = Field(
        1.0, ge=0, description="session shards -> MongoDB (counters and history): what a shard crash can lose")
    max_message_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_inflight_per_connection: int = Field(64, ge=1)
    coalesce_max_rows: int = Field(2048, ge=1, description="rows per predictor call from one ingress replica (a "
                                                           "larger predict_batch message is split, round-robin "
                                                           "with the other connections' messages)")
    coalesce_wait_s: float = Field(0.0, ge=0)
    twin_inference: Literal["pool", "ingress"] = Field(
        "pool", description="run twin predictions on the EnsemblePredictor pool, or inside the ingress replica "
                            "(fewer Ray hops: faster on one small node; see serve_app/twin/ensembles.py)")
    twin_runtime: Literal["cpu", "cuda", "auto"] = Field(
        "auto", description="where the EnsemblePredictor pool runs ensembles: cpu (ONNX Runtime), cuda (ONNX "
                            "Runtime's CUDA provider, else PyTorch on CUDA; fails without a GPU), auto (cuda "
                            "where a GPU is found)")
    ingress_twin_calls: int = Field(1, ge=1, description="twin predictor calls at once per ingress replica with "
                                                         "twin_inference: ingress, one ONNX Runtime thread each; "
                                                         "times the ingress replicas: about the node's cores")
    websocket_compression: bool = Field(
        False, description="accept permessage-deflate from clients (HAProxy ingress only; costs CPU on both ends)")
    # smart store
    mongodb_uri: str | None = Field(None, description="MongoDB to use; default $MONGODB_URI, else the embedded server")
    embedded_mongo_port: int = 27117
    db_dir: str = "data/db"
    catalogue: str = "configs/catalogue.json"
    detector_weights: str = "data/detector/store_detector.onnx"
    detector_conf: float = Field(0.4, gt=0, lt=1, description="detections below this score are dropped")
    detector_iou: float = Field(0.5, gt=0, lt=1, description="NMS: boxes of one class overlapping more are merged")
    store_inference: Literal["pool", "ingress"] = Field(
        "pool", description="detect kiosk frames on the YOLODetector pool, or inside the ingress replica "
                            "(no Ray hop per frame: lower latency on one small node; see serve_app/store/detection.py)")
    ingress_detector_calls: int = Field(1, ge=1, description="frames detected at once per ingress replica with "
                                                             "store_inference: ingress, one ONNX Runtime thread each; "
                                                             "times the ingress replicas: about the node's cores")
    store_session_ttl_s: float = Field(86400.0, gt=0, description="idle time after which a kiosk session and cart go")
    max_frame_bytes: int = Field(2 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(4096 * 4096, gt=0, description="kiosk frames and face photos declaring more pixels "
                                                                 "in their header are refused before decoding")
    face_interval_s: float = Field(1.0, ge=0, description="face recognition at most this often per kiosk")
    cart_stable_k: int = Field(3, ge=1, description="a product enters the cart when seen in k ...")
    cart_stable_n: int = Field(5, ge=1, description="... of the last n processed frames, in the same place")
    cart_min_score: float = Field(0.5, ge=0, le=1, description="detections below this score are no evidence "
                                  "for the cart (serve_app.store.cart)")
    cart_min_iou: float = Field(0.3, gt=0, le=1, description="box overlap that makes a detection the same object "
                                "as in the frame before")
    catalogue_refresh_s: float = Field(30.0, gt=0)
    enrollment: EnrollmentSettings = EnrollmentSettings()
    # access and limits (per ingress replica)
    auth: AuthSettings = AuthSettings()
    max_http_body_bytes: int = Field(12 * 1024 * 1024, gt=0)
    http_requests_per_s: float = Field(50.0, gt=0, description="per client address")
    http_burst: float = Field(200.0, ge=1)
    max_connections: int = Field(2000, ge=1, description="open WebSockets in all")
    max_connections_per_address: int = Field(300, ge=1)
    twin_messages_per_s: float = Field(5000.0, gt=0, description="per twin connection")
    twin_burst: float = Field(10000.0, ge=1)
    kiosk_frames_per_s: float = Field(30.0, gt=0, description="per kiosk connection")
    kiosk_burst: float = Field(60.0, ge=1)
