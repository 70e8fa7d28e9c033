"""onerec-trt: a TensorRT FP8 compilation backend for OneRec-V2-style generative recommenders."""

__version__ = "0.1.0"
