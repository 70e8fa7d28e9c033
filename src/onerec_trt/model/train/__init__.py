"""The train stage (``onerec-trt train``): ``stage.py`` (options, the stage), ``fit.py`` (the
one training loop both architectures use), ``schedule.py`` (budgeted cosine, early stopping),
``onerec.py`` and ``qwen3.py`` (what each ``--arch`` trains), ``config.py``, ``defaults.py``,
``losses.py``, ``qwen3_data.py``. Imports nothing at load time."""
