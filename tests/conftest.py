import os

import torch

# Tests are small: one thread keeps them deterministic and leaves the other core free.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest  # noqa: E402

from helpers import write_sequences  # noqa: E402


@pytest.fixture
def cli(capsys):
    """The CLI in this process: (exit code, stderr) of one command."""
    from types import SimpleNamespace

    from onerec_trt.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)

    return run


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """A tiny model trained on a learnable sequence file, exported and quantized (~20 s)."""
    from onerec_trt.artifacts import write_manifest
    from onerec_trt.data import load_dataset
    from onerec_trt.export import ExportOptions, export
    from onerec_trt.model.checkpoint import save_model
    from onerec_trt.model.config import ModelConfig
    from onerec_trt.model.tokenizer import TokenizerConfig
    from onerec_trt.model.train.onerec import train
    from onerec_trt.model.train.stage import TrainConfig
    from onerec_trt.quantize import QuantizeOptions, quantize

    root = tmp_path_factory.mktemp("pipeline")
    data = write_sequences(root / "seq.txt", users=120, items=40)
    bundle = train(load_dataset("sequences", data), ModelConfig.from_preset("tiny"),
                   TokenizerConfig(codebook_size=4, embedding_dim=8),
                   TrainConfig(epochs=4, batch_size=8, lr=0.01, eval_users=30, eval_beam=10),
                   progress=False)
    bundle.training["data"] = str(data)
    save_model(root / "model", bundle)
    write_manifest(root / "model", "train", {})
    export(ExportOptions(model=str(root / "model"), out=str(root / "onnx"), beam=10, topk=10))
    quantize(QuantizeOptions(model=str(root / "model"), onnx=str(root / "onnx"),
                             out=str(root / "fp8"), calib_users=64, calib_batch=16))
    return root


@pytest.fixture(scope="session")
def shipped_pipeline(tmp_path_factory):
    """The shipped model exported and quantized with default options, and its plugin graphs."""
    from onerec_trt.export import ExportOptions, export
    from onerec_trt.model.checkpoint import SHIPPED
    from onerec_trt.quantize import QuantizeOptions, quantize

    if not SHIPPED.is_dir():
        pytest.skip(f"the shipped model is not in {SHIPPED}")
    root = tmp_path_factory.mktemp("shipped")
    from onerec_trt.plugins import PluginsOptions, plugins

    export(ExportOptions(out=str(root / "onnx")))
    quantize(QuantizeOptions(onnx=str(root / "onnx"), out=str(root / "fp8")))
    plugins(PluginsOptions(onnx=str(root / "onnx"), out=str(root / "plugins")))
    return root
