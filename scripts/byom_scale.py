"""Bring-your-own-model at scale: a OneRec-1.7B-sized Qwen3 (Qwen3-1.7B's config plus 3 x 8192
itemic tokens, random weights, no download) through import, export, quantize and lint, each in
its own process, with its wall time, peak resident memory and the files it wrote.

    python scripts/byom_scale.py --work /tmp/byom --out byom-scale

The checkpoint is made by this script (transformers' Qwen3ForCausalLM, bf16 safetensors, a
word-level tokenizer with Qwen3's vocabulary size of placeholder tokens, then the itemic
tokens) with a catalogue of ``--items`` random unique code triples. Writes ``scale.json`` and
``scale.md`` into ``--out``; numbers are of this machine, said in the table's header.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_bench import finish, machine, run_stages, stage_table  # noqa: E402

# Qwen/Qwen3-1.7B's config.json (the architecture OneRec-Foundation 1.7B extends)
QWEN3_1_7B = {"hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
              "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
              "vocab_size": 151936, "max_position_embeddings": 40960, "rope_theta": 1000000.0,
              "rms_norm_eps": 1e-6, "tie_word_embeddings": True}


def make_checkpoint(folder: Path, items: int, codebook: int, seed: int) -> None:
    """The checkpoint and its catalogue (``folder.tsv``), with random weights."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from onerec_trt.model.hf.itemic import itemic_vocabulary, write_itemic_tokenizer
    from onerec_trt.model.synthetic import random_codes

    base = QWEN3_1_7B["vocab_size"]
    tokens = itemic_vocabulary([codebook] * 3, extra=tuple(f"<t{i}>" for i in range(4, base)))
    folder.mkdir(parents=True)
    write_itemic_tokenizer(folder, tokens)
    torch.manual_seed(seed)
    torch.set_default_dtype(torch.bfloat16)
    config = Qwen3Config(**{**QWEN3_1_7B, "vocab_size": len(tokens)}, pad_token_id=0,
                         dtype="bfloat16")
    Qwen3ForCausalLM(config).save_pretrained(folder)
    codes = random_codes(items, [codebook] * 3, seed)
    letters = "abc"
    rows = ("".join(f"<s_{letters[t]}_{c}>" for t, c in enumerate(row)) for row in codes.tolist())
    lines = ["item_id\tcodes", *(f"{i}\t{r}" for i, r in enumerate(rows, start=1))]
    Path(f"{folder}.tsv").write_text("\n".join(lines) + "\n")


def stage_commands(a, work: Path) -> list[tuple[str, list[str]]]:
    ck, m, e, q = (str(work / name) for name in ("checkpoint", "model", "onnx", "fp8"))
    return [
        ("import", ["import", "--hf", ck, "--catalogue", f"{ck}.tsv", "--max-history",
                    str(a.history), "--histories", str(a.calib), "--out", m]),
        ("export", ["export", "--model", m, "--beam", str(a.beam), "--topk", "10", "--out", e]),
        ("quantize", ["quantize", "--model", m, "--onnx", e, "--out", q, "--calib-data",
                      f"{m}/histories.npy", "--calib-users", str(a.calib)]),
        ("lint", ["lint", "--quiet", f"{e}/reference.bf16.onnx", f"{q}/fp8.onnx"]),
    ]


def markdown(result: dict) -> str:
    a = result["options"]
    lines = [f"Bring-your-own-model scale run: Qwen3-1.7B's config + 3 x {a['codebook']} "
             f"itemic tokens, random weights ({result.get('parameters', '?')}), "
             f"{a['items']:,} catalogue items, prompts of {a['history']} history items, beam "
             f"{a['beam']}, {a['calib']} calibration histories; on {result['machine']} (CPU "
             "only; backend of every stage: torch / ONNX Runtime CPU).", "",
             *stage_table(result["stages"])]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="scratch folder (about 20 GB)")
    p.add_argument("--out", required=True, help="folder for scale.json and scale.md")
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--codebook", type=int, default=8192)
    p.add_argument("--history", type=int, default=20, help="history items in a prompt")
    p.add_argument("--beam", type=int, default=128)
    p.add_argument("--calib", type=int, default=4, help="calibration histories")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep --work afterwards")
    p.add_argument("--make-checkpoint", metavar="DIR", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.make_checkpoint:
        make_checkpoint(Path(a.make_checkpoint), a.items, a.codebook, a.seed)
        return 0
    work, out = Path(a.work), Path(a.out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    result = {"options": vars(a), "machine": machine(), "stages": []}
    make = [sys.executable, __file__, "--work", str(work), "--out", str(out),
            "--items", str(a.items), "--codebook", str(a.codebook), "--seed", str(a.seed),
            "--make-checkpoint", str(work / "checkpoint")]
    folders = {"checkpoint": "checkpoint", "import": "model", "export": "onnx",
               "quantize": "fp8"}
    run_stages([("checkpoint", make), *stage_commands(a, work)], folders, work, out, result,
               raw=("checkpoint",))
    if (work / "checkpoint").is_dir():
        result["parameters"] = _parameters(work / "checkpoint")
    return finish(result, markdown(result), work, out, a.keep)


def _parameters(checkpoint: Path) -> str:
    """Parameter count from the safetensors headers (no weights read)."""
    from onerec_trt.model.checkpoint import safetensors_header

    total = 0
    for path in checkpoint.glob("*.safetensors"):
        for info in safetensors_header(path).values():
            count = 1
            for d in info["shape"]:
                count *= d
            total += count
    return f"{total / 1e6:,.0f}M parameters"


if __name__ == "__main__":
    sys.exit(main())
