"""verify shows the price of fidelity: the candidate's predicted speed-up (from its quantize
run's report) and the score error at the top-10 cut against the 10/11 gap."""

from onerec_trt.commands.backends import verify_backends
from onerec_trt.layout import QUANTIZE_REPORT
from onerec_trt.quantize import QuantizeReport
from onerec_trt.quantize.speedup import LABEL
from onerec_trt.verify import VerifyOptions, verify


def test_verify_reports_the_fp8_policys_predicted_speedup_and_the_cut(tiny_pipeline, tmp_path):
    opts = VerifyOptions(reference=str(tiny_pipeline / "onnx" / "reference.cpu.onnx"),
                         candidate=str(tiny_pipeline / "fp8" / "fp8.cpu.onnx"),
                         model=str(tiny_pipeline / "model"), users=30, batch=30,
                         out=str(tmp_path / "v"), bootstrap=50)
    report = verify(opts, *verify_backends(opts))
    quantized = QuantizeReport.load(tiny_pipeline / "fp8" / QUANTIZE_REPORT)
    speedup = report.predicted_speedup
    assert speedup["over_bf16"] == quantized.predicted_speedup["over_bf16"]
    assert speedup["label"] == LABEL and speedup["fp8_flop_share"] == quantized.fp8_flop_share
    assert not report.score_cut["computed"]  # the tiny graphs return 10 scores: no 11th
    md = (tmp_path / "v" / "verify.md").read_text()
    assert "predicted speed-up over bf16 of the candidate's FP8 policy" in md and LABEL in md
    assert "not computed" in md

    opts.candidate, opts.out = opts.reference, str(tmp_path / "same")
    assert verify(opts, *verify_backends(opts)).predicted_speedup == {}  # a bf16 graph
