"""A user's own model, written with only the documented protocol (dynrnn.models.DynamicalSystem;
no dynrnn base class), runs through ``run``, the fixed-point finder and the Lyapunov spectrum.

The Henon map (Henon 1976, "A two-dimensional mapping with a strange attractor", Commun. Math.
Phys. 50, 69-77): ``x' = 1 - a x^2 + y``, ``y' = b x``. Its fixed points are
``x* = (-(1 - b) +- sqrt((1 - b)^2 + 4 a)) / (2 a)``, ``y* = b x*``, both saddles at the
classic a = 1.4, b = 0.3. Its Jacobian determinant is -b everywhere, so lambda_1 + lambda_2 =
ln b per step; lambda_1 = 0.41922 per step on the attractor (Sprott 2003, Chaos and Time-Series
Analysis, Oxford University Press, Appendix A).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dynrnn import DynamicalSystem, run
from dynrnn.analyses import find_fixed_points, lyapunov_spectrum


class Henon:
    """K Henon maps with parameters ``a [K]`` and ``b [K]``, float64, no inputs."""

    n_inputs = 0
    n_outputs = 2
    n_units = 2
    dtype = torch.float64
    device = torch.device("cpu")

    def __init__(self, a, b):
        self.a = torch.as_tensor(a, dtype=torch.float64)
        self.b = torch.as_tensor(b, dtype=torch.float64)
        self.n_networks = len(self.a)

    def init_state(self, batch_size, generator=None):
        return torch.zeros(self.n_networks, batch_size, 2, dtype=torch.float64)

    def prepare(self):
        return {"a": self.a[:, None], "b": self.b[:, None]}

    def input_drive(self, x):
        return x  # no inputs: [K or 1, B, (T,) 0]

    def step_drive(self, h, drive, params, noise=None):
        x, y = h[..., 0], h[..., 1]
        return torch.stack((1 - params["a"] * x * x + y, params["b"] * x), dim=-1)

    def step(self, h, x=None):
        return self.step_drive(h, None, self.prepare())

    def readout(self, h):
        return h

    def jacobian(self, h, x=None):
        K, B = h.shape[:2]
        J = torch.zeros(K, B, 2, 2, dtype=torch.float64)
        J[..., 0, 0] = -2 * self.a[:, None] * h[..., 0]
        J[..., 0, 1] = 1.0
        J[..., 1, 0] = self.b[:, None].expand(K, B)
        return J


A = [1.4, 1.2, 1.0]
B = [0.3, 0.3, 0.3]


def _fixed_points(a, b):
    root = math.sqrt((1 - b) ** 2 + 4 * a)
    return sorted(((-(1 - b) + s * root) / (2 * a), b * (-(1 - b) + s * root) / (2 * a))
                  for s in (-1, 1))


def test_the_user_model_follows_the_documented_protocol():
    assert isinstance(Henon(A, B), DynamicalSystem)


def test_run_steps_without_input_equal_iterating_the_map():
    model = Henon(A, B)
    h0 = torch.tensor([[0.1, 0.0], [0.0, 0.2]], dtype=torch.float64)  # [B, N]
    states, outputs = run(model, h0=h0, n_steps=50)
    assert states.shape == (3, 2, 50, 2) and outputs.shape == (3, 2, 50, 2)
    h = h0.expand(3, -1, -1)
    for t in range(50):
        h = model.step(h)
        torch.testing.assert_close(states[:, :, t], h, rtol=0, atol=0)
    seen = []
    none, last = run(model, h0=h0, n_steps=50, return_states=False,
                     callback=lambda t, s: seen.append(s))
    assert none is None and len(seen) == 50
    torch.testing.assert_close(last, outputs, rtol=0, atol=0)


def test_fixed_points_of_the_henon_map_are_its_two_saddles():
    model = Henon(A, B)
    fp = find_fixed_points(model, n_initial=64, seed=0, progress=False)
    for k, (a, b) in enumerate(zip(A, B)):
        net = fp.sel(network=k)
        valid = net["valid"].values.astype(bool)
        found = net["points"].values[valid]
        assert len(found) == 2, (k, found)
        for p in np.array(_fixed_points(a, b)):
            assert np.min(np.linalg.norm(found - p, axis=-1)) < 1e-8, (k, p, found)
        # both are saddles: one eigenvalue outside and one inside the unit circle
        moduli = np.sort(np.abs(net["eigenvalues"].values[valid]), -1)
        assert (moduli[:, 0] < 1).all() and (moduli[:, 1] > 1).all(), moduli
        assert (net["stability"].values[valid] == 1).all()  # 1 = saddle


def test_lyapunov_spectrum_of_the_henon_attractor():
    model = Henon([1.4], [0.3])
    h0 = torch.tensor([[0.1, 0.1]] * 4, dtype=torch.float64)
    ds = lyapunov_spectrum(model, h0=h0, n_steps=20_000, burn_in=1000, progress=False)
    lam = np.median(ds["exponents"].values.reshape(-1, 2), axis=0)
    assert abs(lam[0] - 0.41922) < 0.01, lam
    assert abs(lam.sum() - math.log(0.3)) < 1e-6, lam
