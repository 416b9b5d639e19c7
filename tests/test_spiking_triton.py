"""Triton Izhikevich step kernel == reference loop (identical spikes in float64), run in
Triton's interpreter on the CPU (TRITON_INTERPRET=1 from conftest.py; small sizes)."""

import pytest
import torch

from dynrnn.kernels.izhikevich import izhikevich_reference
from dynrnn.models.spiking import IzhikevichConfig, IzhikevichReservoir

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from dynrnn.kernels.spiking_triton import izhikevich_triton  # noqa: E402


@pytest.mark.parametrize(
    "synapse, scheme, feedback",
    [("delta", "half_step", 0.0), ("exp", "euler", 0.0), ("double_exp", "half_step", 0.5)],
)
def test_triton_step_equals_reference_float64(synapse, scheme, feedback):
    cfg = IzhikevichConfig(n_excitatory=16, n_inhibitory=5, n_inputs=0, n_outputs=2,
                           dt=0.5, scheme=scheme, synapse=synapse, w_exc=3.0, w_inh=4.0,
                           feedback_gain=feedback, init="random", bias=8.0)
    model = IzhikevichReservoir(cfg, n_networks=2, seed=3).to(torch.float64)
    if feedback:
        model.W_out.normal_(generator=torch.Generator().manual_seed(0))
    p, c = model.prepare_simulation(), model._cfg()
    h0 = model.init_state(3, generator=1)
    state = model.split_state(h0)
    noise = model.sample_noise(3, 80, torch.Generator().manual_seed(2))
    ref_state, ref_spk, ref_r = izhikevich_reference(state, p, c, 80, noise=noise,
                                                     record_rates=True)
    got_state, got_spk, got_r = izhikevich_triton(state, p, c, 80, noise=noise,
                                                  record_rates=True)
    assert ref_spk.sum() > 100  # the network is active
    assert torch.equal(got_spk, ref_spk)
    # states differ by the summation order of I_syn (1e-16), amplified by the v^2 upswing
    for a, b in zip(got_state, ref_state):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(got_r, ref_r, rtol=1e-5, atol=1e-3)
