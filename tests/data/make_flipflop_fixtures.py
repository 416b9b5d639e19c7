"""Write the trained flip-flop fixtures of tests/test_fixed_points.py (run from the repository
root: ``python tests/data/make_flipflop_fixtures.py``).

Each fixture is a few networks of one ensemble trained by ``dynrnn.training.train`` with the
recipe in ``tests/_flipflop.py`` (seed 0), stored in float64 with ``dynrnn.zoo.save_model``. The
fast tests analyse the stored weights in float64, so their outcome does not depend on the CPU
the training ran on. Which networks of the ensemble are stored, and the outcome measured when
the file was written, are in the JSON's ``metadata``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _flipflop import TRAIN, flipflop_outcome, train_flipflop_ensemble  # noqa: E402

from dynrnn.zoo import save_model  # noqa: E402

#: name -> (n_bits, n_units, networks trained, canonical networks stored). Each fixture keeps
#: the first canonical networks of its ensemble and the first non-canonical one (if any).
FIXTURES = {
    "flipflop3_rate64": (3, 64, 16, 4),
    "flipflop2_rate24": (2, 24, 8, 3),
}


def main() -> None:
    torch.set_num_threads(1)
    for name, (n_bits, n_units, K, n_canonical) in FIXTURES.items():
        model, history = train_flipflop_ensemble(n_bits, n_units, K, seed=0)
        outcome = flipflop_outcome(model, n_bits)
        print(name, "canonical", outcome["canonical"].astype(int), "free step",
              outcome["free_step"])
        canon = [k for k in range(K) if outcome["canonical"][k]][:n_canonical]
        other = [k for k in range(K) if not outcome["canonical"][k]][:1]
        keep = sorted(canon + other)
        meta = {
            "recipe": "tests/_flipflop.py, seed 0",
            "train_config": {f: getattr(TRAIN, f) for f in TRAIN.__dataclass_fields__},
            "n_bits": n_bits,
            "networks_of_ensemble": keep,
            "n_networks_trained": K,
            "reached": history.reached[keep].tolist(),
            "canonical_when_written": outcome["canonical"][keep].tolist(),
            "n_stable_when_written": outcome["n_stable"][keep].tolist(),
            "canonical_fraction_of_ensemble": float(outcome["canonical"].mean()),
        }
        save_model(model.select(keep).double(), HERE / name, metadata=meta)


if __name__ == "__main__":
    main()
