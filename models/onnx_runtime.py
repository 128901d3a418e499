"""ONNX Runtime session settings shared by every model the engine serves."""

from __future__ import annotations

import onnxruntime as ort


def onnx_providers(prefer_gpu: bool = True) -> list[str]:
    """CUDA first when this onnxruntime build has it (onnxruntime-gpu on a GPU node), CPU always."""
    available = ort.get_available_providers()
    providers = ["CUDAExecutionProvider"] if prefer_gpu and "CUDAExecutionProvider" in available else []
    return providers + ["CPUExecutionProvider"]


def inference_session(path: str, intra_op_threads: int = 0, prefer_gpu: bool = True) -> ort.InferenceSession:
    """A session whose idle worker threads sleep instead of spinning: on a small node the model shares
    its cores with the proxy, the ingress and other replicas, and spinning threads starve them."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(path, sess_options=options, providers=onnx_providers(prefer_gpu))
