"""Python-backend models for Triton. Each file is copied into a model repository as
``<model>/1/model.py`` and runs inside Triton's python stub, so it imports only numpy,
onnxruntime and ``triton_python_backend_utils``, never ``onerec_trt``.
"""
