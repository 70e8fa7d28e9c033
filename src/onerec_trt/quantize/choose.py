"""Which GEMMs run in FP8: the policy a quantize run applies, and where it came from.

In order: ``--policy FILE``; ``--search`` (measured on validation users, ``search.py``);
``--quantize-all`` (none in bf16); the model folder's own ``fp8_policy.json``; the default
exclusions (``ptq.DEFAULT_EXCLUDE``). ``--exclude`` and ``--exclusions`` always add to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from onerec_trt.data.samplers import held_out
from onerec_trt.errors import user_error
from onerec_trt.metrics import recall_ndcg
from onerec_trt.model.generate import Generator, users_per_call
from onerec_trt.model.train.fp8_phase import output_heads
from onerec_trt.quantize import QuantizeOptions
from onerec_trt.quantize.flops import RequestFlops
from onerec_trt.quantize.measure import OverlapMeter
from onerec_trt.quantize.policy import CALIB_METHODS, Policy, model_policy, read_policy
from onerec_trt.quantize.ptq import excluded_layers, linear_layers
from onerec_trt.quantize.search import SearchResult, search_layers

log = logging.getLogger(__name__)


def fixed_policy(opts: QuantizeOptions, bundle, model) -> tuple[Policy, dict[str, str]]:
    """The policy of a run without ``--search``, and each bf16 layer's reason."""
    layers = linear_layers(model)
    if opts.policy:
        policy = read_policy(opts.policy)
        policy.check_layers(layers, opts.policy)
        return policy, policy.reasons(opts.policy)
    if not opts.default_exclusions:
        return Policy([], opts.calib_method or "max"), {}
    own = model_policy(bundle.path)
    if own is not None:
        policy = read_policy(own)
        policy.check_layers(layers, str(own))
        return policy, policy.reasons("of the model folder (fp8_policy.json)")
    reasons = excluded_layers(model, [], [], default_policy=True)
    return Policy(sorted(reasons), opts.calib_method or "max"), reasons


def user_exclusions(opts: QuantizeOptions, model, names: list[str]) -> dict[str, str]:
    """--exclude REGEX and --exclusions FILE: layers the user keeps in bf16 whatever the policy."""
    return excluded_layers(model, opts.exclude, names, default_policy=False)


class QualityMeter(OverlapMeter):
    """``OverlapMeter`` that also returns each candidate's Recall@10 and NDCG@10 change
    against bf16 (relative: FP8 / bf16 - 1) on the same validation users' held-out items:
    free, the candidate's items are already computed."""

    def __init__(self, generator, histories, targets: np.ndarray, batch: int, reference=None):
        self.targets, self._last = targets, None
        super().__init__(generator, histories, batch, reference)
        # items ranked below 10 (an export's --topk < 10): no @10 metrics
        self.bf16 = recall_ndcg(self.reference, targets, (10,)) \
            if self.reference.shape[1] >= 10 else {}

    def items(self, bf16_layers: set[str]) -> np.ndarray:
        self._last = super().items(bf16_layers)
        return self._last

    def __call__(self, bf16_layers: set[str]) -> tuple[float, float, dict]:
        mean, lower = super().__call__(bf16_layers)
        fp8 = recall_ndcg(self._last, self.targets, (10,)) if self.bf16 else {}
        return mean, lower, {k: fp8[k] / v - 1.0 if v else None for k, v in self.bf16.items()}


def validation_histories(opts: QuantizeOptions, bundle):
    """The search's seeded sample of validation users (never test users) and their held-out
    items."""
    if bundle.untrained:
        raise user_error(f"--search measures on validation users, and {bundle.path} has no "
                         "dataset ('onerec-trt init')",
                         "pass --policy FILE or --exclude, or search with a trained model")
    data = bundle.load_data(opts.dataset, opts.data, opts.columns)
    histories, targets = held_out(data.split(), "valid", opts.search_users,
                                  bundle.config.max_history, opts.seed)
    return histories, targets, data.name


def teacher_items(teacher: torch.nn.Module, like, histories: np.ndarray, batch: int
                  ) -> np.ndarray:
    """The bf16 top-K items of ``teacher`` (no quantizers) under the generation loop ``like``
    (its beam, top-K and step): what a QAD student's candidates are measured against."""
    graph = Generator(teacher, like.beam, like.topk, like.step).eval()
    with torch.no_grad():
        return np.concatenate([graph(torch.from_numpy(histories[i:i + batch]))[0].numpy()
                               for i in range(0, len(histories), batch)])


def run_search(opts: QuantizeOptions, bundle, calibrated: Callable[[str], torch.nn.Module],
               flops: RequestFlops, forced: dict[str, str],
               teacher: torch.nn.Module | None = None
               ) -> tuple[Policy, SearchResult, torch.nn.Module]:
    """Calibrate with each candidate algorithm (``calibrated(method)`` returns a calibrated
    generation loop), keep the one with the best overlap@10 with every GEMM in FP8, then search
    its layers (search.py). ``teacher`` (``--qad``): every candidate is measured against the
    teacher's bf16 items, the comparison verify makes, not the student's own bf16. Returns the
    policy, the trials and the chosen calibrated loop."""
    histories, targets, dataset = validation_histories(opts, bundle)
    methods = [opts.calib_method] if opts.calib_method else list(CALIB_METHODS)
    log.info(f"search: {len(histories):,} validation users of {dataset}, target overlap@10 >= "
             f"{opts.target_overlap}" + (" against the teacher's bf16" if teacher else ""))
    calib_trials, best, reference = [], None, None
    for method in methods:
        graph = calibrated(method)
        batch = users_per_call(graph.beam, bundle.config.codebook_sizes, 250)
        if reference is None and teacher is not None:
            reference = teacher_items(teacher, graph, histories, batch)
        meter = QualityMeter(graph, histories, targets, batch, reference)
        reference = meter.reference  # every layer bf16: the same whatever the calibration
        value, _, _ = meter(set(forced))
        log.info(f"  calibration   {method:48s} overlap@10 {value:.4f} (every GEMM in FP8)")
        calib_trials.append({"calibration": method, "overlap_at_10": value})
        if best is None or value > best[1] + 1e-9:
            best = (method, value, meter)
    method, _, meter = best
    result = search_layers(meter, meter.layers, flops, opts.target_overlap, forced,
                           output_heads(meter.generator.model))
    chosen = {"split": "valid", "users": int(len(histories)), "dataset": dataset,
              "seed": opts.seed, "target_overlap": opts.target_overlap,
              "overlap_at_10": result.overlap_at_10,
              "overlap_lower_95": result.overlap_lower_95,
              "fp8_flop_share": result.fp8_flop_share,
              "predicted_speedup": result.predicted_speedup,  # roofline, not measured
              "flop_basis": flops.basis, "calibration": method,
              "reference": "the teacher's bf16" if teacher is not None else "bf16",
              "reference_metrics": meter.bf16,  # its Recall@10 / NDCG@10 on these users
              "calibration_trials": calib_trials}
    return Policy(result.bf16_layers, method, chosen), result, meter.generator

