"""Hugging Face generative recommenders behind the model protocol, as loading needs them: the
catalogue, the decoder-only (Qwen3, Qwen2, Llama) and encoder-decoder (T5) adapters, factories,
and transformers' own constrained generate as the oracle (the import stage that writes their
folders is ``model/hf_import/``). transformers is imported lazily."""
