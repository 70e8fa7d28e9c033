"""The import stage (``onerec-trt import``): a Hugging Face checkpoint (or a factory) and its
catalogue -> a model folder. What loading the folder needs stays in ``model/hf/``."""
