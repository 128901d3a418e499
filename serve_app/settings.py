"""Application settings: the `args` of configs/serve.yaml, validated, in one section per product and concern:
`twin`, `store`, `enrollment`, `sessions`, `database`, `limits`, `auth`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve_app.web.auth import AuthSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FRONTEND = PROJECT_ROOT / "frontend"


def ray_environment(path: Path = PROJECT_ROOT / "configs" / "serve.env") -> dict[str, str]:
    """The NAME=value lines of configs/serve.env: Ray Serve settings that must be set before Ray starts."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def merge_settings(settings: dict, changes: dict) -> dict:
    """`settings` with `changes` written into it, section by section (a nested dict changes only the keys it
    names); returns `settings`."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            merge_settings(settings[key], value)
        else:
            settings[key] = value
    return settings


def project_path(path: str) -> Path:
    """Relative paths in settings are relative to the project folder, wherever Ray starts a replica."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


class _Section(BaseModel):
    """A settings section: an unknown key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class TwinSettings(_Section):
    """`twin`: the digital-twin stream."""

    model_repository: str = "data/model_repository"
    results_dir: str = Field("data/results", description="where `save` writes history exports")
    history_limit: int = Field(10_000, ge=0, description="samples kept per twin session")
    session_ttl_s: float = Field(300.0, gt=0, description="how long a disconnected session can be resumed")
    inference: Literal["pool", "ingress"] = Field(
        "pool", description="run twin predictions on the EnsemblePredictor pool, or inside the ingress replica "
                            "(fewer Ray hops: faster on one small node; see serve_app/twin/ensembles.py)")
    runtime: Literal["cpu", "cuda", "auto"] = Field(
        "auto", description="where the EnsemblePredictor pool runs ensembles: cpu (ONNX Runtime), cuda (ONNX "
                            "Runtime's CUDA provider, else PyTorch on CUDA; fails without a GPU), auto (cuda "
                            "where a GPU is found)")
    ingress_calls: int = Field(1, ge=1, description="predictor calls at once per ingress replica with inference: "
                                                    "ingress, one ONNX Runtime thread each; times the ingress "
                                                    "replicas: about the node's cores")
    coalesce_max_rows: int = Field(2048, ge=1, description="rows per predictor call from one ingress replica (a "
                                                           "larger predict_batch message is split, round-robin "
                                                           "with the other connections' messages)")
    coalesce_wait_s: float = Field(0.0, ge=0)


class StoreSettings(_Section):
    """`store`: the smart store's kiosks, detector, faces and carts."""

    catalogue: str = "configs/catalogue.json"
    catalogue_refresh_s: float = Field(30.0, gt=0)
    detector_weights: str = "data/detector/store_detector.onnx"
    detector_conf: float = Field(0.4, gt=0, lt=1, description="detections below this score are dropped")
    detector_iou: float = Field(0.5, gt=0, lt=1, description="NMS: boxes of one class overlapping more are merged")
    inference: Literal["pool", "ingress"] = Field(
        "pool", description="detect kiosk frames on the YOLODetector pool, or inside the ingress replica "
                            "(no Ray hop per frame: lower latency on one small node; see serve_app/store/detection.py)")
    ingress_calls: int = Field(1, ge=1, description="frames detected at once per ingress replica with inference: "
                                                    "ingress, one ONNX Runtime thread each; times the ingress "
                                                    "replicas: about the node's cores")
    session_ttl_s: float = Field(86400.0, gt=0, description="idle time after which a kiosk session and cart go")
    face_interval_s: float = Field(1.0, ge=0, description="face recognition at most this often per kiosk")
    cart_stable_k: int = Field(3, ge=1, description="a product enters the cart when seen in k ...")
    cart_stable_n: int = Field(5, ge=1, description="... of the last n processed frames, in the same place")
    cart_min_score: float = Field(0.5, ge=0, le=1, description="detections below this score are no evidence "
                                  "for the cart (serve_app.store.cart)")
    cart_min_iou: float = Field(0.3, gt=0, le=1, description="box overlap that makes a detection the same object "
                                "as in the frame before")


class EnrollmentSettings(_Section):
    """`enrollment`: teaching the store detector new products (serve_app.store.enrollment, docs/store.md)."""

    real_scenes: str = Field(
        "data/real_scenes", description="the real-scene corpus (python -m models.store.real_scenes)"
    )
    work_dir: str = Field("data/enrollment", description="training jobs' scratch folders")
    cpus: float = Field(0.5, gt=0, description="Ray CPUs a training job reserves (it uses every core it finds)")
    min_photos: int = Field(5, ge=2)
    max_photos: int = Field(20, ge=2)
    photo_side: int = Field(640, ge=64, description="uploaded photos are scaled down to this longest side")
    # the training plan (models.store.train.TrainingPlan)
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


class SessionSettings(_Section):
    """`sessions`: the session-shard actors of both products."""

    shards: int = Field(2, ge=1, le=256)
    flush_interval_s: float = Field(0.1, gt=0, description="ingress -> session shards, batched")
    persist_interval_s: float = Field(
        1.0, ge=0, description="session shards -> MongoDB (counters and history): what a shard crash can lose")


class DatabaseSettings(_Section):
    """`database`: which MongoDB to use."""

    mongodb_uri: str | None = Field(None, description="MongoDB to use; default $MONGODB_URI, else the embedded server")
    embedded_port: int = 27117
    dir: str = Field("data/db", description="the embedded server's files")


class LimitSettings(_Section):
    """`limits`: what one client may send, per ingress replica."""

    max_message_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_inflight_per_connection: int = Field(64, ge=1)
    max_frame_bytes: int = Field(2 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(4096 * 4096, gt=0, description="kiosk frames and face photos declaring more pixels "
                                                                 "in their header are refused before decoding")
    max_http_body_bytes: int = Field(12 * 1024 * 1024, gt=0)
    http_requests_per_s: float = Field(50.0, gt=0, description="per client address")
    http_burst: float = Field(200.0, ge=1)
    max_connections: int = Field(2000, ge=1, description="open WebSockets in all")
    max_connections_per_address: int = Field(300, ge=1)
    twin_messages_per_s: float = Field(5000.0, gt=0, description="per twin connection")
    twin_burst: float = Field(10000.0, ge=1)
    kiosk_frames_per_s: float = Field(30.0, gt=0, description="per kiosk connection")
    kiosk_burst: float = Field(60.0, ge=1)


SECTIONS = {"twin": TwinSettings, "store": StoreSettings, "sessions": SessionSettings, "database": DatabaseSettings,
            "limits": LimitSettings}
RENAMED = {
    "twin_inference": "twin.inference",
    "twin_runtime": "twin.runtime",
    "ingress_twin_calls": "twin.ingress_calls",
    "store_inference": "store.inference",
    "ingress_detector_calls": "store.ingress_calls",
    "store_session_ttl_s": "store.session_ttl_s",
    "session_shards": "sessions.shards",
    "session_flush_interval_s": "sessions.flush_interval_s",
    "session_persist_interval_s": "sessions.persist_interval_s",
    "embedded_mongo_port": "database.embedded_port",
    "db_dir": "database.dir",
}
# where each key of the earlier flat settings lives now
MOVED = {key: f"{section}.{key}" for section, cls in SECTIONS.items() for key in cls.model_fields
         if f"{section}.{key}" not in RENAMED.values()} | RENAMED


class AppSettings(_Section):
    """Tunables of the StreamForge application (deployment sizes live in the Serve config)."""

    twin: TwinSettings = TwinSettings()
    store: StoreSettings = StoreSettings()
    enrollment: EnrollmentSettings = EnrollmentSettings()
    sessions: SessionSettings = SessionSettings()
    database: DatabaseSettings = DatabaseSettings()
    limits: LimitSettings = LimitSettings()
    auth: AuthSettings = AuthSettings()
    websocket_compression: bool = Field(
        False, description="accept permessage-deflate from clients (HAProxy ingress only; costs CPU on both ends)")

    @model_validator(mode="before")
    @classmethod
    def _refuse_flat_keys(cls, data):
        """Settings written for the earlier flat layout name where each key lives now."""
        if isinstance(data, dict):
            moved = [f"`{key}` is now `{MOVED[key]}`" for key in data if key in MOVED]
            if moved:
                raise ValueError("settings are grouped by section: " + "; ".join(moved))
        return data
