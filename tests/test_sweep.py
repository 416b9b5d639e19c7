"""dynrnn.batch.sweep and ``dynrnn sweep``: declarations (TOML = Python), deterministic ids,
chunking by structural fields, resume after SIGKILL at chunk boundaries and mid-write (exactly
the planned networks, weights equal to an uninterrupted run), fault records and
--retry-failed, divergence contained per network, errors naming the field and the file, the
CLI, and the same weights from the process executor."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dynrnn import cli
from dynrnn._validation import ParameterTypeError
from dynrnn.batch import sweep as sweep_mod
from dynrnn.batch.sweep import Sweep, load_sweep, plan, run_sweep, sweep_status, train_chunk
from dynrnn.zoo import Zoo

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

TINY = """
[sweep]
name = "tiny"
seeds = [0, 1, 2]
chunk_size = 2

[task]
name = "flipflop"
n_bits = 2
n_steps = 10

[model]
kind = "rate_rnn"
nonlinearity = "tanh"

[training]
n_steps = 3
batch_size = 4
eval_batch_size = 8
eval_every = 3
lr = 0.01

[grid]
"model.n_units" = [4, 5]
"""


def _tiny_python(**changes) -> Sweep:
    kw = dict(
        name="tiny", seeds=[0, 1, 2], chunk_size=2,
        task={"name": "flipflop", "n_bits": 2, "n_steps": 10},
        model={"kind": "rate_rnn", "nonlinearity": "tanh"},
        training={"n_steps": 3, "batch_size": 4, "eval_batch_size": 8, "eval_every": 3,
                  "lr": 0.01},
        grid={"model.n_units": [4, 5]},
    )
    kw.update(changes)
    return Sweep(**kw)


@pytest.fixture
def tiny_file(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _weights_by_sweep_id(out) -> dict[str, dict[str, np.ndarray]]:
    """``{network id of the sweep: {tensor name: weights of that network}}`` from a zoo."""
    zoo = Zoo(out)
    rows = zoo.networks(as_frame=False)
    result = {}
    for row in rows:
        model = zoo.load([row["id"]])
        result[row["sweep_id"]] = {k: v[0].detach().numpy().copy()
                                   for k, v in model.state_dict().items()}
    assert len(result) == len(rows), "a network of the sweep is stored twice"
    return result


def _assert_same_weights(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for nid in a:
        assert sorted(a[nid]) == sorted(b[nid])
        for name in a[nid]:
            np.testing.assert_array_equal(a[nid][name], b[nid][name], err_msg=f"{nid} {name}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted in-process run of the tiny sweep: (plan, out dir, weights)."""
    d = tmp_path_factory.mktemp("reference")
    (d / "tiny.toml").write_text(TINY)
    status = run_sweep(d / "tiny.toml", d / "zoo")
    assert status.complete and len(status.trained) == 4
    return plan(d / "tiny.toml"), d / "zoo", _weights_by_sweep_id(d / "zoo")


# --------------------------------------------------------------------------- declarations
def test_toml_and_python_declarations_give_the_same_plan(tiny_file):
    from_toml, from_python = plan(tiny_file), plan(_tiny_python())
    assert from_toml.sweep == from_python.sweep
    assert [n.id for n in from_toml.networks] == [n.id for n in from_python.networks]
    assert from_toml.chunks == from_python.chunks
    assert from_toml.sha256 == from_python.sha256
    # a dict of tables, an unquoted dotted grid key (a nested table) and an int for a float
    # field resolve to the same networks
    tables = from_toml.sweep.to_dict()
    tables["grid"] = {"model": {"n_units": [4, 5]}}
    tables["training"]["lr"] = 0.01
    assert [n.id for n in plan(tables).networks] == [n.id for n in from_toml.networks]
    a = plan(_tiny_python(training={"n_steps": 3, "l1": 0}))
    b = plan(_tiny_python(training={"n_steps": 3, "l1": 0.0}))
    assert [n.id for n in a.networks] == [n.id for n in b.networks]


def test_ids_follow_the_documented_rule_are_unique_and_deterministic(tiny_file):
    p = plan(tiny_file)
    assert len(p.networks) == 6 and len({n.id for n in p.networks}) == 6
    assert len({c.id for c in p.chunks}) == len(p.chunks)
    for n in p.networks:  # the id is a hash of the resolved configuration only
        text = json.dumps({"task": n.task, "model": {"kind": "rate_rnn", **n.model},
                           "training": n.training, "training_seed": 0, "seed": n.seed},
                          sort_keys=True, separators=(",", ":"))
        assert n.id == hashlib.sha256(text.encode()).hexdigest()[:16]
        assert n.task["task"] == "flipflop" and n.model["n_inputs"] == 2
        assert "progress" not in n.training
    for c in p.chunks:
        text = json.dumps({"sweep": "tiny", "networks": list(c.networks)}, sort_keys=True,
                          separators=(",", ":"))
        assert c.id == hashlib.sha256(text.encode()).hexdigest()[:12]
    # the same plan in a fresh interpreter (ids do not depend on the process)
    code = (f"from dynrnn.batch.sweep import plan; p = plan({str(tiny_file)!r}); "
            "print(' '.join(n.id for n in p.networks))")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    assert fresh == [n.id for n in p.networks]
    # changing anything about a network changes its id; the seed too
    other = plan(_tiny_python(training={"n_steps": 4}))
    assert not {n.id for n in other.networks} & {n.id for n in p.networks}


def test_chunks_group_networks_by_structural_fields():
    sw = _tiny_python(
        seeds=[0, 1], chunk_size=3,
        grid={"model.n_units": [4, 6], "model.nonlinearity": ["tanh", "relu"],
              "model.init_gain": [0.5, 1.0], "training.lr": [0.01, 0.001],
              "training.l1": [0.0, 0.1]},
    )
    p = plan(sw)
    assert len(p.networks) == 2 * 2 * 2 * 2 * 2 * 2
    # n_units, nonlinearity (model structural) and l1 (a shared training field) split groups;
    # init_gain (per-network model field) and lr (per-network training field) do not
    assert len(p.groups) == 8
    by = {n.id: n for n in p.networks}
    mixed_gain = mixed_lr = False
    for c in p.chunks:
        nets = [by[i] for i in c.networks]
        assert 1 <= len(nets) <= 3
        assert all(n.chunk == c.id and n.group == c.group for n in nets)
        for key in ("n_units", "nonlinearity"):
            assert len({n.model[key] for n in nets}) == 1
        assert len({n.training["l1"] for n in nets}) == 1
        mixed_gain |= len({n.model["init_gain"] for n in nets}) > 1
        mixed_lr |= len({n.training["lr"] for n in nets}) > 1
    assert mixed_gain and mixed_lr
    assert sorted(i for c in p.chunks for i in c.networks) == sorted(by)  # each once
    item = p.work_item(p.chunks[0])  # per-network lr reaches train as one value per network
    assert len(item["training"]["lr"]) == len(item["configs"]) == len(item["seeds"])


# --------------------------------------------------------------------------- bad sweeps
BAD = [
    ("[model]", 'kind = "rate_rnn"\nn_unitz = 4', ValueError, "n_unitz"),
    ("[model]", 'kind = "rate_rnn"\nn_units = 4\nnonlinearity = 3', ValueError,
     "nonlinearity"),
    ("[model]", 'kind = "rate_rnn"\nn_units = 4\ninit_gain = -1.0', ValueError, "init_gain"),
    ("[training]", "n_steps = 2.5", ParameterTypeError, "n_steps"),
    ("[training]", "progress = true", ValueError, "progress"),
    ("[grid]", '"model.n_units" = []', ValueError, "model.n_units"),
    ("[grid]", '"model.n_units" = 4', ParameterTypeError, "model.n_units"),
    ("[grid]", '"model.n_units" = [4, "big"]', ParameterTypeError, "n_units"),
    ("[grid]", '"model.units" = [4]', ValueError, "model.units"),
    ("[grid]", '"optimizer.lr" = [1.0]', ValueError, "optimizer.lr"),
    ("[task]", 'name = "flipflap"', ValueError, "flipflap"),
    ("[sweep]", 'name = "s"\nchunk_size = 0', ValueError, "chunk_size"),
    ("[sweep]", 'name = "s"\nrepeats = 3', ValueError, "repeats"),
]


def _file_with(tmp_path, table: str, body: str) -> Path:
    tables = {"[sweep]": 'name = "s"', "[task]": 'name = "flipflop"\nn_bits = 2',
              "[model]": 'kind = "rate_rnn"\nn_units = 4', "[training]": "n_steps = 2",
              "[grid]": ""}
    tables[table] = body
    path = tmp_path / "bad_sweep.toml"
    path.write_text("\n".join(f"{t}\n{b}\n" for t, b in tables.items()))
    return path


@pytest.mark.parametrize("table, body, error, field", BAD)
def test_bad_sweep_files_name_the_field_and_the_file(tmp_path, table, body, error, field):
    path = _file_with(tmp_path, table, body)
    with pytest.raises(error) as info:
        plan(path)
    message = str(info.value)
    assert str(path) in message and field in message, message


def test_bad_values_in_python_name_the_field_and_the_source():
    with pytest.raises(ValueError, match=r"<Sweep>: \[grid\] model.n_units: .*n_units"):
        _tiny_python(grid={"model.n_units": [4, 0]})
    with pytest.raises(ValueError, match=r"\[model\] kind: unknown model kind 'esn'"):
        _tiny_python(model={"kind": "esn"})
    with pytest.raises(ValueError, match=r"\[model\] n_units: required"):
        _tiny_python(grid={})
    with pytest.raises(ValueError, match="appears twice"):
        _tiny_python(grid={"model.n_units": [4, 4]})
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_sweep("nope.toml")


# --------------------------------------------------------------------------- resume
KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    os.environ["TQDM_DISABLE"] = "1"
    import torch
    torch.set_num_threads(1)
    import dynrnn.zoo
    from dynrnn.zoo import _io
    from dynrnn.zoo import zoo as zoo_module
    from dynrnn.batch.sweep import run_sweep

    mode, sweep_file, out = sys.argv[1:4]
    seen = {"adds": 0, "entry_json": 0, "weights": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    original_add = zoo_module.Zoo.add

    def add(self, *args, **kwargs):
        ids = original_add(self, *args, **kwargs)
        seen["adds"] += 1
        if mode == "boundary" and seen["adds"] == 1:
            die()  # the first chunk is committed, the second not started
        return ids

    original_write = _io.atomic_write_bytes

    def write(path, data):
        path = Path(path)
        if path.parent.name == "entries" and path.suffix == ".safetensors":
            seen["weights"] += 1
            if mode == "torn" and seen["weights"] == 2:  # half a weights file, then death
                tmp = path.with_name("." + path.name + ".abcdef123456.tmp")
                tmp.write_bytes(data[: len(data) // 2])
                die()
        if path.parent.name == "entries" and path.suffix == ".json":
            seen["entry_json"] += 1
            if mode == "before_json" and seen["entry_json"] == 2:
                die()  # the second chunk's weights are on disk, its entry JSON is not
        if mode == "manifest" and path.parent.name == "sweeps":
            tmp = path.with_name("." + path.name + ".abcdef123456.tmp")
            tmp.write_bytes(data[:10])
            die()
        return original_write(path, data)

    zoo_module.Zoo.add = add
    _io.atomic_write_bytes = write  # the zoo's own writes
    dynrnn.zoo.atomic_write_bytes = write  # the sweep's records (imported from dynrnn.zoo)
    run_sweep(sweep_file, out)
    sys.exit(3)  # not reached: every mode kills the run
""")


@pytest.mark.parametrize("mode, committed", [("boundary", 1), ("before_json", 1), ("torn", 1),
                                             ("manifest", 0)])
def test_sigkill_then_restart_finishes_exactly_the_plan(tmp_path, tiny_file, reference, mode,
                                                       committed):
    ref_plan, _, ref_weights = reference
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    out = tmp_path / "zoo"
    proc = subprocess.run([sys.executable, str(script), mode, str(tiny_file), str(out)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # the zoo opens after the kill and holds only whole chunks
    rows = Zoo(out).networks(as_frame=False) if (out / "entries").is_dir() else []
    assert len({r["chunk"] for r in rows}) == committed
    if mode != "manifest":
        (st,) = sweep_status(out)
        assert len(st.chunks_done) == committed and len(st.chunks_pending) == 4 - committed
    torn = sorted((out / "entries").glob(".*.tmp")) if (out / "entries").is_dir() else []
    assert len(torn) == (mode == "torn")  # the killed write's temporary file
    for t in torn:  # aged past remove_stale_temporaries' default 10 minutes
        os.utime(t, (t.stat().st_atime - 3600, t.stat().st_mtime - 3600))
    # the same call again finishes the sweep, training only what was missing
    status = run_sweep(tiny_file, out)
    assert not list((out / "entries").glob(".*.tmp"))  # the leftover was removed
    assert status.complete and len(status.trained) == 4 - committed
    zoo = Zoo(out)
    rows = zoo.networks(as_frame=False)
    assert sorted(r["sweep_id"] for r in rows) == sorted(n.id for n in ref_plan.networks)
    assert len(zoo.entries()) == len(ref_plan.chunks)  # one entry per chunk, none twice
    assert zoo.check() == []  # no orphaned weights left by the interrupted write
    _assert_same_weights(_weights_by_sweep_id(out), ref_weights)
    assert run_sweep(tiny_file, out).trained == ()  # nothing finished is redone


RUNNER = textwrap.dedent("""
    import os, sys
    os.environ["TQDM_DISABLE"] = "1"
    import torch
    torch.set_num_threads(1)
    from dynrnn.batch.sweep import run_sweep
    run_sweep(sys.argv[1], sys.argv[2])
""")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_sigkill_at_any_moment_after_the_first_chunk(tmp_path, tiny_file, reference, delay):
    """Whenever the kill lands (or if the run finishes first), the zoo opens with whole chunks
    only and a restart completes the plan with the uninterrupted run's weights."""
    import time

    ref_plan, _, ref_weights = reference
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    out = tmp_path / "zoo"
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_file), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "TQDM_DISABLE": "1"})
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not (
            (out / "entries").is_dir() and list((out / "entries").glob("*.json"))):
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read()
    rows = Zoo(out).networks(as_frame=False)
    chunks = {r["chunk"] for r in rows}
    assert len(rows) == sum(len(c.networks) for c in ref_plan.chunks if c.id in chunks)
    status = run_sweep(tiny_file, out)
    assert status.complete and len(status.trained) == 4 - len(chunks)
    assert Zoo(out).check() == []
    _assert_same_weights(_weights_by_sweep_id(out), ref_weights)


def test_zoo_rows_show_sweep_columns(reference):
    ref_plan, out, _ = reference
    df = Zoo(out).networks()
    for column in ("n_units", "seed", "sweep", "sweep_id", "chunk", "status", "diverged",
                   "reached", "final_eval_loss"):
        assert column in df.columns
    planned = {n.id: n for n in ref_plan.networks}
    for row in df.to_dict("records"):
        n = planned[row["sweep_id"]]
        assert (row["n_units"], row["seed"], row["chunk"]) == (n.model["n_units"], n.seed,
                                                               n.chunk)
        assert row["sweep"] == "tiny" and row["status"] == "done"
        assert f"chunk:{n.chunk}" in row["tags"] and "sweep:tiny" in row["tags"]


def test_a_changed_sweep_for_the_same_out_dir_is_refused(tmp_path, reference):
    _, out, _ = reference
    changed = _tiny_python(chunk_size=3)
    with pytest.raises(ValueError, match="planned differently"):
        run_sweep(changed, out)


def test_weights_do_not_depend_on_the_chunk_or_executor(reference):
    ref_plan, _, ref_weights = reference
    alone = plan(ref_plan.sweep.replace(chunk_size=1))  # every network in its own train call
    for c in alone.chunks:
        state = train_chunk(alone.work_item(c))["state"]
        (nid,) = c.networks
        for name, value in state.items():
            np.testing.assert_array_equal(value[0], ref_weights[nid][name])


@pytest.mark.parametrize("executor", ["processes", pytest.param("dask", marks=pytest.mark.slow)])
def test_other_executors_give_the_same_weights(tmp_path, tiny_file, reference, executor):
    status = run_sweep(tiny_file, tmp_path / "zoo", executor=executor, workers=2)
    assert status.complete and len(status.trained) == 4
    _assert_same_weights(_weights_by_sweep_id(tmp_path / "zoo"), reference[2])


# --------------------------------------------------------------------------- faults
def test_a_failing_chunk_is_recorded_and_only_it_is_retried(tmp_path, tiny_file, monkeypatch,
                                                           capsys, reference):
    p = plan(tiny_file)
    bad = p.chunks[1].id
    real = sweep_mod.train_chunk
    calls = []

    def flaky(item):
        calls.append(item["chunk"])
        if item["chunk"] == bad:
            raise RuntimeError("out of memory on this node")
        return real(item)

    monkeypatch.setattr(sweep_mod, "train_chunk", flaky)
    out = tmp_path / "zoo"
    assert cli.main(["sweep", "run", str(tiny_file), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"chunk {bad} failed: RuntimeError: out of memory" in err and "Traceback" not in err
    assert (out / "entries").is_dir()  # a failed run never removes the sweep's record
    status = sweep_status(out)[0]
    assert status.chunks_failed == (bad,) and len(status.chunks_done) == 3
    assert status.errors == {bad: "RuntimeError: out of memory on this node"}
    record = json.loads((out / "sweeps" / "tiny" / "failed" / f"{bad}.json").read_text())
    assert record["chunk"] == bad and "Traceback" in record["traceback"]
    assert record["networks"] == list(p.chunks[1].networks)
    # without --retry-failed the failed chunk is reported, not run again
    calls.clear()
    assert run_sweep(tiny_file, out).chunks_failed == (bad,) and calls == []
    assert cli.main(["sweep", "status", str(out)]) == 0
    assert "1 failed" in capsys.readouterr().out
    # --retry-failed runs it (and only it)
    monkeypatch.setattr(sweep_mod, "train_chunk", lambda item: calls.append(item["chunk"])
                        or real(item))
    assert cli.main(["sweep", "run", str(tiny_file), "--out", str(out), "--retry-failed",
                     "--quiet"]) == 0
    assert calls == [bad]
    assert not (out / "sweeps" / "tiny" / "failed" / f"{bad}.json").exists()
    (st,) = sweep_status(out)
    assert st.complete and st.networks_done == 6
    _assert_same_weights(_weights_by_sweep_id(out), reference[2])


def test_a_diverging_network_is_failed_and_its_chunk_mates_finish(tmp_path):
    sw = _tiny_python(seeds=[0], grid={"model.n_units": [4], "training.lr": [0.01, 1e8]})
    p = plan(sw)
    assert len(p.chunks) == 1  # lr is per network: one train call
    status = run_sweep(sw, tmp_path / "zoo")
    assert status.complete and status.diverged == 1
    rows = {r["lr"]: r for r in Zoo(tmp_path / "zoo").networks(as_frame=False)}
    assert rows[1e8]["status"] == "failed" and rows[1e8]["diverged"] is True
    assert rows[0.01]["status"] == "done" and rows[0.01]["diverged"] is False
    assert np.isfinite(rows[0.01]["final_eval_loss"])
    weights = _weights_by_sweep_id(tmp_path / "zoo")[rows[0.01]["sweep_id"]]
    assert all(np.isfinite(w).all() for w in weights.values())


# --------------------------------------------------------------------------- CLI
def test_cli_plan_run_status(tmp_path, tiny_file, capsys):
    assert cli.main(["sweep", "plan", str(tiny_file), "--networks"]) == 0
    text = capsys.readouterr().out
    assert "6 networks, 4 chunks" in text and "2 structural groups" in text
    assert "estimated training time" in text
    assert all(n.id in text for n in plan(tiny_file).networks)
    out = tmp_path / "zoo"
    assert cli.main(["sweep", "run", str(tiny_file), "--out", str(out), "--quiet"]) == 0
    assert "4/4 chunks done" in capsys.readouterr().out
    assert cli.main(["sweep", "status", str(out)]) == 0
    assert "tiny: 4/4 chunks done, 0 failed, 0 pending; 6/6 networks" in capsys.readouterr().out


@pytest.mark.parametrize("argv, named", [
    (["run", "{file}", "--out", "{out}", "--workers", "2"], "--workers"),
    (["run", "{file}", "--out", "{out}", "--executor", "processes", "--workers", "0"],
     "--workers"),
    (["run", "{file}", "--out", "{out}", "--scheduler", "tcp://h:1"], "--scheduler"),
    (["run", "{file}", "--out", "{out}", "--executor", "dask", "--scheduler", "h:1"],
     "--scheduler"),
    (["run", "{missing}", "--out", "{out}"], "FILE"),
    (["run", "{file}", "--out", "{file}/x"], "--out"),
    (["plan", "{file}", "--estimate-steps", "-1"], "--estimate-steps"),
    (["plan", "{bad}"], "n_unitz"),
    (["status", "{missing}"], "DIR"),
    (["status", "{tmp}"], "no sweep"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, tiny_file, capsys, argv, named):
    bad = _file_with(tmp_path, "[model]", 'kind = "rate_rnn"\nn_unitz = 4')
    names = {"file": tiny_file, "out": tmp_path / "zoo", "missing": tmp_path / "missing.toml",
             "bad": bad, "tmp": tmp_path}
    assert cli.main(["sweep"] + [a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dynrnn: error:") and named in err
    assert "Traceback" not in err
    assert not (tmp_path / "zoo" / "entries").exists()


def test_cli_usage_errors_exit_2(tiny_file, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["sweep", "run", str(tiny_file)])  # --out is required
    assert info.value.code == 2 and "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["sweep", "run", str(tiny_file), "--out", "x", "--executor", "mpi"])
    assert info.value.code == 2 and "--executor" in capsys.readouterr().err


# --------------------------------------------------------------------------- examples
@pytest.mark.parametrize("name", ["flipflop_sizes.toml", "degeneracy_grid.toml"])
def test_examples_plan(name):
    p = plan(EXAMPLES / name)
    assert len(p.networks) == len({n.id for n in p.networks}) > 8
    assert len(p.groups) == 4


def test_shrunk_degeneracy_example_runs(tmp_path):
    sw = load_sweep(EXAMPLES / "degeneracy_grid.toml").replace(
        seeds=[0], task={"n_steps": 10},
        training={"n_steps": 2, "batch_size": 4, "eval_batch_size": 8},
        grid={"model.n_units": [4, 5]},
    )
    status = run_sweep(sw, tmp_path / "zoo")
    assert status.complete and status.networks_done == 2 * 2 * 2
    df = Zoo(tmp_path / "zoo").networks()
    assert sorted(set(df["nonlinearity"])) == ["relu", "tanh"]
    assert sorted(set(df["weight_decay"])) == [0.0, 1e-4]
    assert df.groupby(["n_units", "nonlinearity", "weight_decay"]).size().tolist() == [1] * 8
