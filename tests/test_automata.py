"""Automaton extraction: Tomita grammars, DFAs and Hopcroft minimisation, batched k-means,
extraction by quantisation and by L* from trained networks, state-regularised RNNs, plots, bad
input."""

import functools
import itertools

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dynrnn.analyses.automata import (  # noqa: E402
    DFA,
    automaton_from_centroids,
    extract_automata,
    hopcroft_minimise,
    kmeans,
    lstar,
    lstar_automata,
    reference_dfa,
)
from dynrnn.models import (  # noqa: E402
    MODEL_REGISTRY,
    Ensemble,
    RateRNN,
    RateRNNConfig,
    StateRegularisedConfig,
    StateRegularisedRNN,
)
from dynrnn.plot import plot_automaton, plot_automaton_states  # noqa: E402
from dynrnn.tasks import (  # noqa: E402
    TOMITA_STATE_COUNTS,
    DMSTask,
    FlipFlopTask,
    ParityTask,
    SineWaveTask,
    StringParityTask,
    TomitaTask,
    tomita_accepts,
)
from dynrnn.tasks.tomita import pad_strings  # noqa: E402
from dynrnn.training import TrainConfig, train  # noqa: E402


def _all_strings(A, max_len):
    return [s for n in range(max_len + 1) for s in itertools.product(range(A), repeat=n)]


@functools.cache
def _padded_strings(A, max_len):
    return pad_strings([list(s) for s in _all_strings(A, max_len)])


# ------------------------------------------------------------------------------ Tomita grammars
def test_tomita_reference_dfas_have_the_stated_minimal_state_counts():
    counts = {g: reference_dfa(TomitaTask(grammar=g)).minimise().n_states for g in range(1, 8)}
    assert counts == {1: 2, 2: 3, 3: 5, 4: 4, 5: 4, 6: 3, 7: 5} == TOMITA_STATE_COUNTS
    for g in range(1, 8):  # the tables are already minimal
        ref = reference_dfa(TomitaTask(grammar=g))
        assert ref.n_states == counts[g] and ref.equivalent(ref.minimise())


@pytest.mark.parametrize("grammar", range(1, 8))
def test_tomita_tables_match_the_definitions_up_to_length_10(grammar):
    strings = _all_strings(2, 10)
    dfa = reference_dfa(TomitaTask(grammar=grammar))
    got = dfa.accepts(pad_strings([list(s) for s in strings]))
    ref = np.array([tomita_accepts(grammar, "".join(map(str, s))) for s in strings])
    np.testing.assert_array_equal(got, ref)


def test_tomita_definitions_spot_checks():
    assert tomita_accepts(3, "1100") and not tomita_accepts(3, "10")
    assert not tomita_accepts(3, "1001110")  # odd 1-run "1", later odd 0-run "0"
    assert tomita_accepts(3, "1001100") and tomita_accepts(3, "110")  # even runs are fine
    assert not tomita_accepts(3, "100110")  # "1" (odd) ... "0" (odd, later, not adjacent)
    assert tomita_accepts(6, "000") and not tomita_accepts(6, "00000")  # mod 3, not mod 5
    assert tomita_accepts(6, "0110") and tomita_accepts(6, "0000011")
    assert tomita_accepts(7, "0110") and not tomita_accepts(7, "10101")


@pytest.mark.parametrize("grammar", [1, 2, 3, 4, 5, 6, 7])
def test_tomita_sampling_is_balanced_deterministic_and_labelled(grammar):
    task = TomitaTask(grammar=grammar, length_range=(2, 10), test_length_range=(20, 30))
    tr = task.sample(4000, seed=1)
    again = task.sample(4000, seed=1)
    assert torch.equal(tr.inputs, again.inputs) and torch.equal(tr.targets, again.targets)
    L, sym = tr.info["lengths"], tr.info["symbols"]
    assert int(L.min()) >= 2 and int(L.max()) <= 10
    ref = reference_dfa(task)
    np.testing.assert_array_equal(ref.classify(sym), tr.info["labels"][:, 0].numpy())
    # every prefix target is the grammar's label; the mask covers exactly the real steps
    pl = ref.prefix_labels(sym)[:, 1:]
    real = (sym >= 0).numpy()
    np.testing.assert_array_equal(tr.targets[..., 0].numpy()[real], pl[real])
    assert torch.equal(tr.mask, sym >= 0)
    assert torch.equal(tr.inputs.sum(-1), (sym >= 0).float())  # one-hot, zero padding
    # balanced at each length where both classes exist
    for n in range(2, 11):
        lab = tr.info["labels"][L == n, 0].float()
        pos = ref.accepts(pad_strings([list(s) for s in _all_strings(2, n) if len(s) == n]))
        if 0 < pos.mean() < 1:
            assert abs(float(lab.mean()) - 0.5) < 0.15, (n, float(lab.mean()))
    te = task.sample(500, seed=2, split="test")
    assert int(te.info["lengths"].min()) >= 20 and int(te.info["lengths"].max()) <= 30
    end = TomitaTask(grammar=grammar, targets="end").sample(50, seed=0)
    assert torch.equal(end.mask.sum(1), torch.ones(50, dtype=torch.long))


def test_tomita_config_is_validated():
    with pytest.raises(ValueError, match="'grammar'"):
        TomitaTask(grammar=8)
    with pytest.raises(ValueError, match="'test_length_range'"):
        TomitaTask(length_range=(1, 12), test_length_range=(10, 20))
    with pytest.raises(ValueError, match="'targets'"):
        TomitaTask(targets="all")
    with pytest.raises(ValueError, match="'length_range'"):
        TomitaTask(length_range=(0, 5))
    with pytest.raises(ValueError, match="'split'"):
        TomitaTask().sample(4, 0, split="val")


# -------------------------------------------------------------------- symbolic views of tasks
@pytest.mark.parametrize("cls", [ParityTask, DMSTask])
def test_parity_and_dms_views_reproduce_the_task_labels(cls):
    task = cls(n_values=(2, 3), p_bit=None)
    tr = task.sample(300, seed=4)
    for head in (0, 1):
        view = task.symbolic_view(head)
        sym = view.decode(tr.inputs)
        L = tr.info["lengths"]
        sym = torch.where(torch.arange(sym.shape[1])[None] < L[:, None], sym, -1)
        lab = view.labels(sym)
        np.testing.assert_array_equal(lab.gather(1, L[:, None])[:, 0], tr.info["labels"][:, head])
        assert torch.equal(view.encode(sym), tr.inputs)
    with pytest.raises(ValueError, match="not symbolic"):
        task.symbolic_view().decode(tr.inputs + 0.3)


def test_flipflop_view_reproduces_the_task_targets():
    task = FlipFlopTask(n_bits=2, n_steps=40, p_pulse=0.2)
    tr = task.sample(100, seed=0)
    view = task.symbolic_view()
    sym = view.decode(tr.inputs)
    assert view.n_symbols == 9 and view.n_classes == 4
    assert torch.equal(view.encode(sym), tr.inputs)
    lab = view.labels(sym)[:, 1:]
    both = tr.mask.all(-1)
    bits = (tr.targets > 0).long()
    np.testing.assert_array_equal(lab[both], (bits[..., 0] + 2 * bits[..., 1])[both])
    assert bool((lab[~both] == -1).all())
    one = task.symbolic_view(channel=1).labels(sym)[:, 1:]
    np.testing.assert_array_equal(one[tr.mask[..., 1]], bits[..., 1][tr.mask[..., 1]])
    with pytest.raises(ValueError, match="not symbolic"):
        view.decode(tr.inputs * 0.5)


# ---------------------------------------------------------------------- DFAs and minimisation
@st.composite
def _random_dfas(draw):
    S = draw(st.integers(1, 9))
    A = draw(st.integers(1, 2))
    C = draw(st.integers(2, 3))
    t = draw(st.lists(st.integers(0, S - 1), min_size=S * A, max_size=S * A))
    lab = draw(st.lists(st.integers(0, C - 1), min_size=S, max_size=S))
    start = draw(st.integers(0, S - 1))
    return DFA(np.array(t).reshape(S, A), np.array(lab), start, C)


@settings(max_examples=60, deadline=None)
@given(_random_dfas())
def test_hopcroft_preserves_the_language_and_never_grows(dfa):
    m, block = hopcroft_minimise(dfa)
    strings = _padded_strings(dfa.n_symbols, 12)
    np.testing.assert_array_equal(m.classify(strings), dfa.classify(strings))
    assert m.n_states <= dfa.reachable().n_states <= dfa.n_states
    # minimal: every two states are distinguishable; idempotent
    for p, q in itertools.combinations(range(m.n_states), 2):
        a = DFA(m.transitions, m.labels, p, m.n_classes)
        b = DFA(m.transitions, m.labels, q, m.n_classes)
        assert a.counterexample(b) is not None
    assert hopcroft_minimise(m)[0].n_states == m.n_states
    reach = dfa._bfs_order()
    assert set(np.flatnonzero(block >= 0)) == set(reach)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 7), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_hopcroft_on_a_redundant_copy_gives_the_minimal_dfa(grammar, copies, seed):
    ref = reference_dfa(TomitaTask(grammar=grammar))
    S = ref.n_states
    rng = np.random.default_rng(seed)
    # each state duplicated `copies` times; each transition goes to a random copy of its target
    t = np.array([[ref.transitions[s % S, a] + S * rng.integers(copies) for a in range(2)]
                  for s in range(S * copies)])
    big = DFA(t, np.tile(ref.labels, copies), int(S * rng.integers(copies)), 2)
    m = big.minimise()
    assert m.n_states == S and m.equivalent(ref)
    np.testing.assert_array_equal(m.transitions, ref.minimise().transitions)


def test_dfa_counterexample_export_and_errors():
    t1 = reference_dfa(TomitaTask(grammar=1))
    t2 = reference_dfa(TomitaTask(grammar=2))
    cex = t1.counterexample(t2)
    assert cex is not None and len(cex) == 1  # "1": in 1*, not in (10)*
    assert t1.classify([cex])[0] != t2.classify([cex])[0]
    assert t1.agreement(t1.minimise(), ["0101", "111"]) == 1.0
    g = t2.to_networkx()
    assert g.number_of_nodes() == 3 and g.nodes[0]["accepting"] and g.nodes[0]["start"]
    assert sorted(len(d["symbols"]) for _, _, d in g.edges(data=True)) == [1, 1, 1, 1, 2]
    with pytest.raises(ValueError, match="'transitions'"):
        DFA(np.array([[0, 3]]), np.array([0]))
    with pytest.raises(ValueError, match="wrong alphabet"):
        t1.classify(["0120"])
    with pytest.raises(TypeError, match="non-symbolic"):
        t1.classify(np.array([[0.5, 1.0]]))


def test_batched_kmeans_recovers_separated_clusters_per_network():
    g = torch.Generator().manual_seed(0)
    K, k, D = 4, 5, 3
    centres = torch.randn(K, k, D, generator=g, dtype=torch.float64) * 10
    lab = torch.randint(0, k, (K, 600), generator=g)
    pts = centres.gather(1, lab[..., None].expand(-1, -1, D)) + 0.05 * torch.randn(
        K, 600, D, generator=g, dtype=torch.float64)
    c, a, inertia = kmeans(pts, k, seed=1)
    for i in range(K):  # the partition is recovered up to relabelling
        pairs = set(zip(a[i].tolist(), lab[i].tolist()))
        assert len(pairs) == k
    c2, a2, _ = kmeans(pts, k, seed=1)
    assert torch.equal(a, a2)
    assert float(inertia.max()) < 600 * D * 0.05**2 * 2


# ---------------------------------------------------------------- extraction from trained nets
@pytest.fixture(scope="module")
def parity_nets():
    task = ParityTask(n_values=(2,))
    model = Ensemble(RateRNNConfig(1, 16, 2), n_networks=6, seed=0)
    train(model, task, TrainConfig(n_steps=400, batch_size=64, lr=0.01, eval_every=25,
                                   accuracy_threshold=0.995, progress=False), seed=0)
    return model, task


def _truth_minimal_dfa(view, max_len=10):
    """The minimal DFA of the task's ground truth, by L* with the truth as oracle and an
    exhaustive equivalence check up to ``max_len``."""
    strings = pad_strings([list(s) for s in _all_strings(view.n_symbols, max_len)])
    L = (strings >= 0).sum(1)
    truth = view.labels(strings).gather(1, L[:, None])[:, 0].numpy()

    def member(batch):
        sym = pad_strings([list(s) for s in batch])
        n = (sym >= 0).sum(1)
        return view.labels(sym).gather(1, n[:, None])[:, 0].tolist()

    def cex(h):
        bad = np.flatnonzero(h.classify(strings) != truth)
        return None if not len(bad) else tuple(strings[bad[0], : L[bad[0]]].tolist())

    return lstar(member, view.n_symbols, view.n_classes, cex)[0].minimise()


def test_two_parity_minimal_dfa_of_the_task():
    # ParityTask's N-parity is the parity of the LAST N bits: for N = 2 the machine must
    # remember the last bit and the current answer, 4 states (whole-string parity has 2)
    view = ParityTask(n_values=(2,)).symbolic_view()
    assert _truth_minimal_dfa(view).n_states == 4


def test_extraction_from_two_parity_networks(parity_nets):
    model, task = parity_nets
    view = task.symbolic_view()
    n_min = _truth_minimal_dfa(view).n_states
    res = extract_automata(model, task, seed=0)
    ds = res.dataset
    assert ds.sizes["network"] == 6 and "seed" in ds.coords and "n_units" in ds.coords
    lo, hi = view.train_lengths
    assert 2 * hi <= ds.attrs["test_lengths"][0] and ds.attrs["test_lengths"][1] <= 4 * hi
    ok = (ds.n_states_after == n_min) & (ds.fidelity >= 0.99) & ~ds.inconclusive
    assert int(ok.sum()) >= 4, ds[["fidelity", "n_states_after", "n_clusters"]]
    assert bool((ds.n_states_after <= ds.n_states_before).all())
    # the machines compute the task on every string the networks were trained on (length >=
    # min_length; shorter prefixes were never trained and are free)
    strings = pad_strings([list(s) for s in _all_strings(2, 12) if len(s) >= view.min_length])
    truth = _truth_minimal_dfa(view).classify(strings)
    for dfa, good in zip(res.automata, ok.values):
        if good:
            np.testing.assert_array_equal(dfa.classify(strings), truth)
    # the cluster -> DFA state map classifies prefix states consistently with the DFA
    sym = view.sample(50, view.train_lengths, torch.Generator().manual_seed(3))
    from dynrnn.models import run

    net = int(np.flatnonzero(ok.values)[0])
    states, _ = run(model.select(net).double(), view.encode(sym).double())
    q = res.dfa_states(net, states[0].detach().numpy())
    dfa_q = res.automata[net].run(sym)[:, 1:]
    real = (sym >= 0).numpy()
    assert (q[real] == dfa_q[real]).mean() > 0.95


def test_lstar_from_two_parity_networks(parity_nets):
    model, task = parity_nets
    res = lstar_automata(model, task, seed=0, n_equivalence=1000)
    ds = res.dataset
    ok = (ds.n_states_after == 4) & (ds.fidelity >= 0.99) & ~ds.inconclusive
    assert int(ok.sum()) >= 4, ds[["fidelity", "n_states_after", "n_queries"]]
    assert bool((ds.n_queries > 0).all())


def test_user_quantiser_is_used(parity_nets):
    model, task = parity_nets

    def sign_code(points):  # sign pattern of the first 2 units
        return ((points[..., 0] > 0).long() * 2 + (points[..., 1] > 0).long())

    res = extract_automata(model.select([0, 1]), task, quantiser=sign_code, seed=0)
    assert bool((res.dataset.n_clusters <= 4).all())
    assert res.dataset.k.values.tolist() == [int(res.dataset.n_clusters.max())]


# ------------------------------------------------------------------- whole-string parity
def test_whole_string_parity_task():
    task = StringParityTask(length_range=(2, 10))
    tr = task.sample(300, seed=4)
    again = task.sample(300, seed=4)
    assert torch.equal(tr.inputs, again.inputs) and torch.equal(tr.targets, again.targets)
    sym, L = tr.info["symbols"], tr.info["lengths"]
    assert int(L.min()) >= 2 and int(L.max()) <= 10
    real = (sym >= 0).numpy()
    for b in range(20):  # every prefix's target is the parity of all bits so far
        bits = sym[b, : L[b]].tolist()
        np.testing.assert_array_equal(tr.targets[b, : L[b], 0].numpy(),
                                      np.cumsum(bits) % 2)
    assert torch.equal(tr.mask, sym >= 0)
    np.testing.assert_array_equal(tr.inputs[..., 0].numpy()[real], sym.numpy()[real])
    assert torch.equal(tr.info["labels"][:, 0], tr.targets[torch.arange(300), L - 1, 0])
    # the ground truth's minimal machine has 2 states and is the reference DFA; the
    # sliding-window ParityTask(n_values=(2,)) needs 4 (test above)
    view = task.symbolic_view()
    minimal = _truth_minimal_dfa(view)
    assert minimal.n_states == 2 and minimal.equivalent(reference_dfa(task))
    assert view.test_lengths == (20, 40)
    end = StringParityTask(targets="end", p_bit=None).sample(50, seed=0)
    assert torch.equal(end.mask.sum(1), torch.ones(50, dtype=torch.long))
    assert float(end.info["p_bit"].std()) > 0.1
    from dynrnn.tasks import task_from_dict

    assert task_from_dict(task.to_dict()) == task
    with pytest.raises(ValueError, match="'length_range'"):
        StringParityTask(length_range=(5, 2))
    with pytest.raises(ValueError, match="'p_bit'"):
        StringParityTask(p_bit=1.5)
    with pytest.raises(ValueError, match="'targets'"):
        StringParityTask(targets="all")


def test_extraction_from_whole_string_parity_networks():
    # the literal claim: from networks trained on (whole-string) 2-parity, the extracted minimal
    # automaton has exactly 2 states and fidelity >= 0.99 on strings 2-4x longer than training,
    # for a majority of networks. Recurrent noise (std 0.2) during training makes "even" and
    # "odd" attracting: without it the networks are right on the training lengths but drift
    # on long strings (measured, 600 steps: 2 of 6 networks pass without noise; with it 7 and 5
    # of 8, seeds 1 and 2); 1000 steps with noise: 31 of 32 (seeds 0-3, 8 networks each).
    task = StringParityTask(length_range=(2, 10))
    model = Ensemble(RateRNNConfig(1, 16, 2, rec_noise_std=0.2), n_networks=8, seed=0)
    train(model, task, TrainConfig(n_steps=1000, batch_size=64, lr=0.01, eval_every=100,
                                   accuracy_threshold=1.0, progress=False), seed=0)
    res = extract_automata(model, task, seed=0)
    ds = res.dataset
    lo, hi = task.symbolic_view().train_lengths
    assert ds.attrs["test_lengths"][0] >= 2 * hi and ds.attrs["test_lengths"][1] <= 4 * hi
    ok = (ds.n_states_after == 2) & (ds.fidelity >= 0.99) & ~ds.inconclusive
    assert int(ok.sum()) >= 5, ds[["fidelity", "n_states_after", "network_accuracy"]]
    ref = reference_dfa(task)
    for dfa, good in zip(res.automata, ok.values):
        if good:
            assert dfa.equivalent(ref)


# ------------------------------------------------------------------------------- bad input
def _counter_network():
    """h' = h + x_1 - x_0, label = [h > 0]: #1 > #0, a counter language (not regular)."""
    m = RateRNN(RateRNNConfig(2, 1, 2, nonlinearity="identity")).double()
    with torch.no_grad():
        m.W_rec.fill_(1.0)
        m.W_in.copy_(torch.tensor([[[-1.0, 1.0]]]))
        m.b.zero_()
        m.W_out.copy_(torch.tensor([[[-1.0], [1.0]]]))
        m.b_out.copy_(torch.tensor([[0.5, 0.0]]))
    return m


def test_network_without_finite_state_description_is_inconclusive():
    task = TomitaTask(grammar=1, length_range=(1, 12), test_length_range=(30, 40))
    res = extract_automata(_counter_network(), task, k_range=(2, 6), seed=0)
    ds = res.dataset
    assert bool(ds.inconclusive.all())
    assert float(ds.validation_fidelity.max()) < 0.99  # the fidelity reached is reported
    assert np.isfinite(ds.validation_fidelity_by_k.values).all()


def test_bad_inputs_raise_clear_errors(parity_nets):
    model, task = parity_nets
    one = model.select(0)
    with pytest.raises(ValueError, match="not symbolic"):
        extract_automata(one, task, strings=torch.rand(10, 8, 1))
    with pytest.raises(TypeError, match="non-symbolic"):
        extract_automata(one, task, strings=np.array([[0.0, 1.0, 0.5]]))
    with pytest.raises(ValueError, match="wrong alphabet"):
        extract_automata(one, task, strings=[[0, 1, 2, 1]])
    with pytest.raises(ValueError, match="limit"):
        extract_automata(one, task, test_lengths=(20, 10_000))
    with pytest.raises(ValueError, match="limit"):
        extract_automata(one, task, strings=np.zeros((2, 5000), dtype=np.int64))
    with pytest.raises(TypeError, match="symbolic task"):
        extract_automata(one, SineWaveTask())
    with pytest.raises(ValueError, match="n_inputs"):
        extract_automata(one, TomitaTask())
    with pytest.raises(ValueError, match="'fidelity_target'"):
        extract_automata(one, task, fidelity_target=1.5)
    with pytest.raises(ValueError, match="'k_range'"):
        extract_automata(one, task, k_range=(5, 2))


# ----------------------------------------------------------------- state-regularised networks
def test_state_regularised_rnn_protocol_and_exact_centroid_automaton():
    assert MODEL_REGISTRY["state_regularised_rnn"] is StateRegularisedRNN
    task = TomitaTask(grammar=4)
    for cell in ("gru", "rate"):
        cfg = StateRegularisedConfig(2, 8, 2, n_centroids=6, cell=cell, temperature_decay=0.5)
        m = Ensemble(cfg, n_networks=3, seed=1)
        assert isinstance(m, StateRegularisedRNN)
        h = torch.randn(3, 5, 8)
        x = torch.nn.functional.one_hot(torch.randint(0, 2, (5,)), 2).float()
        soft = m.step(h, x)  # training mode: a convex combination of the centroids
        alpha = m.centroid_weights(m.cell_step(h, m._drive_for_step(h, x), m.prepare()))
        torch.testing.assert_close(soft, torch.bmm(alpha, m.centroids))
        m.eval()
        hard = m.step(h, x)  # evaluation: exactly one centroid
        d = torch.cdist(hard, m.centroids).min(-1).values.detach()
        assert float(d.max()) < 1e-6
        m.train()
        m.project_()
        assert torch.allclose(m.temperature, torch.full((3,), 0.5))
        # untrained or not, in evaluation mode the network IS its centroid automaton
        res = automaton_from_centroids(m, task, n_test=300)
        assert bool((res.dataset.fidelity == 1.0).all()), res.dataset.fidelity.values
        assert bool((res.dataset.prefix_fidelity == 1.0).all())
    with pytest.raises(ValueError, match="'temperature_min'"):
        StateRegularisedConfig(2, 8, 2, temperature_init=0.5, temperature_min=1.0)
    with pytest.raises(ValueError, match="'cell'"):
        StateRegularisedConfig(2, 8, 2, cell="lstm")
    with pytest.raises(TypeError, match="state-regularised"):
        automaton_from_centroids(RateRNN(RateRNNConfig(2, 4, 2)), task)


def test_state_regularised_straight_through_and_sphere_init():
    N, k = 8, 6
    soft_cfg = StateRegularisedConfig(2, N, 2, n_centroids=k, cell="rate", temperature_init=2.0)
    hard_cfg = StateRegularisedConfig(2, N, 2, n_centroids=k, cell="rate", temperature_init=2.0,
                                      straight_through_temperature=2.0)
    assert soft_cfg.straight_through_temperature == 0.0  # default: soft training (the paper)
    m = Ensemble([hard_cfg, soft_cfg], seed=3).double()
    h = torch.randn(2, 5, N, dtype=torch.float64)
    x = torch.nn.functional.one_hot(torch.randint(0, 2, (5,)), 2).double()
    w = torch.randn(2, 5, N, dtype=torch.float64)
    out = m.step(h, x)  # network 0 hard (value = the argmax centroid), network 1 soft
    u = m.cell_step(h, m._drive_for_step(h, x), m.prepare())
    alpha = m.centroid_weights(u)
    j = alpha.argmax(-1)
    torch.testing.assert_close(out[0], m.centroids[0][j[0]])
    torch.testing.assert_close(out[1], torch.bmm(alpha, m.centroids)[1])
    m.eval()
    torch.testing.assert_close(m.step(h, x)[0], out[0])  # training runs what evaluation runs
    m.train()
    # straight-through: the cell's gradient is the soft mixture's gradient (Bengio et al. 2013)
    (g_st,) = torch.autograd.grad((m.step(h, x) * w).sum(), m.W_rec)
    u = m.cell_step(h, m._drive_for_step(h, x), m.prepare())
    (g_soft,) = torch.autograd.grad((torch.bmm(m.centroid_weights(u), m.centroids) * w).sum(),
                                    m.W_rec)
    torch.testing.assert_close(g_st, g_soft)
    # hard only while the temperature is at or below the threshold
    late = Ensemble(StateRegularisedConfig(2, N, 2, n_centroids=k, temperature_init=1.0,
                                           temperature_decay=0.5, temperature_min=0.1,
                                           straight_through_temperature=0.3), seed=0)
    hl = torch.randn(1, 5, N)
    with torch.no_grad():
        d = torch.cdist(late.step(hl, x.float()), late.centroids).min(-1).values
        assert float(d.max()) > 1e-3  # temperature 1 > 0.3: soft
        late.project_()
        late.project_()  # temperature 0.25 <= 0.3: hard
        d = torch.cdist(late.step(hl, x.float()), late.centroids).min(-1).values
        assert float(d.max()) < 1e-5
    # sphere initialisation: every centroid has norm c sqrt(N / 3)
    sph = Ensemble(StateRegularisedConfig(2, 12, 2, n_centroids=20, centroid_init="sphere",
                                          centroid_scale=0.5), n_networks=2, seed=0)
    torch.testing.assert_close(sph.centroids.norm(dim=-1),
                               torch.full((2, 20), 0.5 * (12 / 3) ** 0.5))
    with pytest.raises(ValueError, match="'straight_through_temperature'"):
        StateRegularisedConfig(2, 8, 2, straight_through_temperature=-1.0)
    with pytest.raises(ValueError, match="'centroid_init'"):
        StateRegularisedConfig(2, 8, 2, centroid_init="gaussian")


# ------------------------------------------------------------------------------------- plots
def test_plots_return_axes_and_keep_nodes_inside():
    import matplotlib.pyplot as plt

    for g in (1, 3, 7):
        dfa = reference_dfa(TomitaTask(grammar=g))
        ax = plot_automaton(dfa)
        assert ax.get_title() == f"{dfa.n_states} states"
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        for coll in ax.collections:
            off = coll.get_offsets()
            if len(off):
                assert (off[:, 0] > x0).all() and (off[:, 0] < x1).all()
                assert (off[:, 1] > y0).all() and (off[:, 1] < y1).all()
        plt.close(ax.figure)
    fig, ax = plt.subplots()
    assert plot_automaton(DFA(np.array([[0, 0]]), np.array([1])), ax=ax) is ax
    rng = np.random.default_rng(0)
    ax2 = plot_automaton_states(rng.normal(size=(100, 5)), rng.integers(-1, 3, 100))
    assert ax2.get_xlabel().startswith("PC 1")
    with pytest.raises(TypeError, match="'dfa'"):
        plot_automaton("not a dfa")
    with pytest.raises(ValueError, match="must"):
        plot_automaton_states(np.zeros((5, 3)), np.zeros(4))
    plt.close("all")


# ------------------------------------------------------------------------------- slow: Tomita
@functools.cache
def _trained_tomita(grammar, K=5, steps=1500, seed=0):
    task = TomitaTask(grammar=grammar)
    # Tomita 3: trained without noise the networks label every training string right but drift
    # on strings 2-4x longer (97.4-99.6% right on 24-48 symbols, so fidelity < 0.99: 1 of 5
    # networks passed). Recurrent noise during training (std 0.1 on the pre-activation
    # W h + U x + b) makes the automaton's states attracting, so they survive long strings
    # (measured: 14 of 15 networks over seeds 0, 10, 20 pass; std 0.2: 8 of 10).
    noise = 0.1 if grammar == 3 else 0.0
    model = Ensemble(RateRNNConfig(2, 32, 2, rec_noise_std=noise), n_networks=K, seed=seed)
    train(model, task, TrainConfig(n_steps=steps, batch_size=128, lr=0.005, eval_every=100,
                                   accuracy_threshold=1.0, progress=False), seed=seed)
    return model, task


@pytest.mark.slow
@pytest.mark.parametrize("grammar", [1, 2, 4, 7])
def test_tomita_extraction_recovers_the_minimal_dfa(grammar):
    model, task = _trained_tomita(grammar)
    ds = extract_automata(model, task, seed=0).dataset
    ok = ((ds.n_states_after == TOMITA_STATE_COUNTS[grammar]) & (ds.fidelity >= 0.99)
          & ~ds.inconclusive)
    assert int(ok.sum()) >= 3, ds[["fidelity", "network_accuracy", "n_states_after"]]


@pytest.mark.slow
@pytest.mark.parametrize("grammar", [3, 5, 6])
def test_tomita_extraction_other_grammars(grammar):
    model, task = _trained_tomita(grammar)
    ds = extract_automata(model, task, seed=0).dataset
    ok = ((ds.n_states_after == TOMITA_STATE_COUNTS[grammar]) & (ds.fidelity >= 0.99)
          & ~ds.inconclusive)
    assert int(ok.sum()) >= 3, ds[["fidelity", "network_accuracy", "n_states_after"]]


@pytest.mark.slow
def test_lstar_on_tomita_networks():
    model, task = _trained_tomita(4)
    ds = lstar_automata(model, task, seed=0).dataset
    ok = (ds.n_states_after == 4) & (ds.fidelity >= 0.99) & ~ds.inconclusive
    assert int(ok.sum()) >= 3, ds[["fidelity", "n_states_after", "n_queries"]]


@pytest.mark.slow
def test_state_regularised_rnn_on_tomita4_gives_the_minimal_dfa_directly():
    # Soft training (alpha^T S, temperature annealed 1 -> 0.01; GRU, N=16, k=10, 600 steps)
    # gave the minimal DFA in 1 of 4 networks: the others' hard (argmax) dynamics collapse to
    # one centroid. What makes it work (measured with 8 networks per setting, 1500 steps,
    # rate cell, N=32):
    # - training the hard dynamics that evaluation runs, by the straight-through estimator from
    #   the first step (straight_through_temperature = temperature = 3, no annealing);
    # - the rate cell (a GRU's update gate copies the state, so every centroid starts as a
    #   fixed point of both symbols and the argmax never leaves the first one);
    # - centroids of equal norm (centroid_init="sphere": the similarity u S^T otherwise favours
    #   the longest centroids);
    # - recurrent noise (std 0.3) on the cell output during training, which makes the argmax
    #   explore neighbouring centroids and the transitions keep a margin;
    # - k = 32 centroids (8 times the minimal 4).
    # With all of them 37 of 42 networks pass (8 networks with seeds 0, 100, 200, 1000: 7, 7,
    # 7, 8; this test's 5 networks with seeds 0 and 1000: 5 and 3). Changing one (k = 16 unless
    # said): all the others with k = 16: 33 of 42; no noise 4 (seed 0) and 6 (seed 100) of 8;
    # uniform centroids 6 of 8 (seed 0); soft training annealed 3 -> 0.01: 5 of 8 (seed 0),
    # without noise too 2 of 8; noise std 0.1: 3, 0.5: 2 of 8; k = 8: 1 of 8. The usual
    # failure: a machine with spurious states that mislabel some prefixes.
    task = TomitaTask(grammar=4)
    cfg = StateRegularisedConfig(2, 32, 2, n_centroids=32, cell="rate", centroid_init="sphere",
                                 temperature_init=3.0, straight_through_temperature=3.0,
                                 rec_noise_std=0.3)
    model = Ensemble(cfg, n_networks=5, seed=0)
    train(model, task, TrainConfig(n_steps=1500, batch_size=128, lr=0.01, eval_every=100,
                                   accuracy_threshold=1.0, progress=False), seed=0)
    res = automaton_from_centroids(model, task)
    ds = res.dataset
    ok = (ds.n_states_after == 4) & (ds.fidelity >= 0.99) & (ds.accuracy >= 0.99)
    assert int(ok.sum()) >= 3, ds[["fidelity", "accuracy", "n_states_after"]]
    ref = reference_dfa(task)
    for dfa, good in zip(res.automata, ok.values):
        if good:  # equal to the reference on every trained (non-empty) string up to length 12
            strings = _padded_strings(2, 12)[1:]
            np.testing.assert_array_equal(dfa.classify(strings), ref.classify(strings))
