import os

import matplotlib
import torch

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")
# Tests check correctness, not speed: one intra-op thread per test process keeps results
# reproducible and avoids thread oversubscription when pytest-xdist runs several workers.
torch.set_num_threads(1)
