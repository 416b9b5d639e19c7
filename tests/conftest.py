import os

import matplotlib
import torch

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")
# Long loops show tqdm bars by default; in the test logs they would only be noise (dynrnn reads
# TQDM_DISABLE when it makes a bar; tests/test_progress.py unsets it to check the bars).
os.environ.setdefault("TQDM_DISABLE", "1")
# Tests check correctness, not speed: one intra-op thread per test process keeps results
# reproducible and avoids thread oversubscription when pytest-xdist runs several workers.
torch.set_num_threads(1)
# Triton kernels run on the CPU through Triton's interpreter where there is no GPU (must be set
# before triton.jit decorates the kernels, i.e. before dynrnn imports them).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Hypothesis draws the same examples on every run (a CI outcome must be reproducible; explore
# new examples locally with HYPOTHESIS_PROFILE=explore).
from hypothesis import settings  # noqa: E402

settings.register_profile("dynrnn", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dynrnn"))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_global_torch_rng():
    """Tests that draw inputs with the global ``torch.randn`` see the same numbers whatever ran
    before them in the worker (pytest-xdist distributes tests differently on each machine). The
    library itself never uses the global RNG."""
    torch.manual_seed(0)
    yield
