"""Continual learning with HLOP (Hebbian learning based orthogonal projection, Xiao et al. 2024).

Three networks learn three permuted pattern-classification tasks one after another, once with
plain SGD and once with HLOP; the script prints the accuracy on the first task after each task
(forgetting) and on every task at the end, and the principal angles between the learned lateral
subspace and the top principal subspace of the activity.

    OMP_NUM_THREADS=1 python examples/hlop_continual.py            # ~1 minute on one core
    OMP_NUM_THREADS=1 python examples/hlop_continual.py --tasks 5
"""

from __future__ import annotations

import argparse

import torch

from dynrnn.models.rate import RateRNNConfig
from dynrnn.tasks import continual_sequence
from dynrnn.training import (
    MLP,
    HLOPConfig,
    HLOPRateRNN,
    SpikingMLP,
    principal_angles,
    train_continual,
)


def main(n_tasks: int = 3, steps: int = 300, seed: int = 0) -> None:
    torch.set_num_threads(1)
    static = continual_sequence(n_tasks)
    recurrent = continual_sequence(n_tasks, n_steps=4)  # pattern at step 0, then 3 memory steps
    setups = {
        "MLP tanh 96-100-100-10": (lambda: MLP([96, 100, 100, 10], "tanh", seed=seed), static,
                                   HLOPConfig(n_neurons=20), 0.1),
        "LIF SNN 96-100-100-10, 5 steps": (
            lambda: SpikingMLP([96, 100, 100, 10], n_steps=5, seed=seed), static,
            HLOPConfig(n_neurons=20), 0.2),
        "rate RNN 64 units, 4 steps": (
            lambda: HLOPRateRNN(RateRNNConfig(n_inputs=96, n_units=64, n_outputs=10,
                                              init_gain=0.9), seed=seed), recurrent,
            HLOPConfig(n_neurons=20 if n_tasks <= 3 else 12), 0.1),
    }
    print(f"{n_tasks} permuted tasks, {steps} SGD steps per task\n")
    for name, (make, tasks, cfg, lr) in setups.items():
        print(name)
        for label, hlop in (("SGD ", None), ("HLOP", cfg)):
            res = train_continual(make(), tasks, hlop=hlop, steps_per_task=steps, lr=lr,
                                  seed=seed)
            first = " -> ".join(f"{a:.3f}" for a in res.first_task)
            final = " ".join(f"{a:.3f}" for a in res.accuracy[-1])
            print(f"  {label}: task-1 accuracy {first}  (drop {res.first_task_drop:5.1f} points)"
                  f";  all tasks at the end: {final}")
        print()

    # the lateral neurons find the principal subspace of the activity
    k = 18
    net = MLP([96, 100, 100, 10], "tanh", seed=seed)
    res = train_continual(
        net, static[:1], hlop=HLOPConfig(n_neurons=k, lr=1.0, n_iters=100, hebbian_batches=100,
                                         hebbian_batch_size=256),
        steps_per_task=steps, lr=0.1, seed=seed,
    )
    with torch.no_grad():
        acts = net(static[0].sample(4000, 5).inputs)[1]
    print(f"Principal angles between {k} lateral neurons and the top-{k} principal subspace of "
          "the activity (MLP, after task 1):")
    for layer, a in enumerate(acts):
        a = a.double()
        evals, U = torch.linalg.eigh(a.T @ a / a.shape[0])
        angles = principal_angles(res.hlop.subspace(layer), U.flip(1)[:, :k].T)
        share = float(evals.flip(0)[:k].sum() / evals.sum())
        print(f"  layer {layer} (n = {a.shape[1]}): largest {float(angles.max()):5.2f} deg, "
              f"median {float(angles.median()):5.2f} deg; top-{k} share of activity power "
              f"{share:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.tasks, args.steps, args.seed)
