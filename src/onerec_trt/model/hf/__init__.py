"""Hugging Face generative recommenders behind the model protocol: the catalogue, the import
stage, the decoder-only (Qwen3, Qwen2, Llama) and encoder-decoder (T5) adapters, and
transformers' own constrained generate as the oracle. transformers is imported lazily."""
