"""The FP8 E4M3 format's facts that every stage shares (analyze, quantize, bench).

Scaling as ModelOpt and TensorRT do it: ``scale = amax / E4M3_MAX``, then values saturate at
``±E4M3_MAX`` in E4M3.
"""

E4M3_MAX = 448.0  # E4M3's largest finite value

# The output heads: ``^heads.`` of this project's models, ``lm_head`` of imported LMs. They stay
# bf16 by default (quantize's default policy, like ModelOpt's own lm_head default), in
# FP8-aware training and in QAD; "all-FP8" means every GEMM but these.
OUTPUT_HEADS = (r"^heads\.", r"(^|\.)lm_head$")
