"""Issue 28, T4: a TensorRT engine of the standard-op graph has no tie order (addTopK promises
largest-first only), so verify gates it on overlap and says so; plugin engines keep the rule."""

from onerec_trt.plugins.spec import COMPOSITES, PLUGINS
from onerec_trt.verify.ties import BEAM_PLUGINS, tie_order


def test_standard_op_tensorrt_engines_are_gated_on_overlap_not_exact_order():
    ties = tie_order("trt", [{"name": "CodesToItem"}])  # no beam-step plugin
    assert ties["exact"] is False
    assert "overlap" in ties["why"] and "largest-first" in ties["why"]


def test_plugin_engines_and_cpu_backends_keep_the_tie_rule():
    assert tie_order("trt", [{"name": "TrieBeamSelect"}, {"name": "CodesToItem"}])["exact"]
    for kind in ("ort", "torch", "hf"):
        assert tie_order(kind, [])["exact"]


def test_the_beam_plugins_named_are_the_registered_ones():
    registered = set(PLUGINS) | set(COMPOSITES)
    assert set(BEAM_PLUGINS) <= registered
