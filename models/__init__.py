"""Model code of both products, with no Ray and no wire format: runs and tests without a cluster.

    models.twin    the digital twin: ensemble (SST + residual boost), training, residual monitor
    models.store   the smart store: product detector, its training and enrollment, faces
    models.onnx_runtime   ONNX Runtime session settings both use
"""
