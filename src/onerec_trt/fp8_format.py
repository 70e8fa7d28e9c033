"""The FP8 E4M3 format's facts that every stage shares (analyze, quantize, bench).

Scaling as ModelOpt and TensorRT do it: ``scale = amax / E4M3_MAX``, then values saturate at
``±E4M3_MAX`` in E4M3.
"""

E4M3_MAX = 448.0  # E4M3's largest finite value
