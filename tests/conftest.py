import os

import torch

# Tests are small: one thread keeps them deterministic and leaves the other core free.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
