"""The init stage (``onerec-trt init``): an untrained model folder of any preset."""
