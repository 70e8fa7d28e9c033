"""Runners and sessions for the exported graphs: ONNX Runtime here, TensorRT where it exists."""
