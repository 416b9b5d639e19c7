"""``dynrnn reconstruct`` writes the model, metrics and figures; bad input is one clear line."""

import json

from dynrnn.cli import main
from dynrnn.zoo import load_model


def test_reconstruct_cli(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["reconstruct", "--system", "lorenz63", "--model", "alrnn", "--pwl", "2",
               "--latent", "6", "--networks", "2", "--iterations", "5", "--seq-len", "20",
               "--batch-size", "4", "--samples", "1500", "--lyapunov-steps", "200",
               "--keep-best-every", "5", "--out", str(out), "--quiet"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["D_stsp"]) == 2 and len(metrics["D_H"]) == 2
    assert metrics["best_iteration"] == [5, 5]
    assert metrics["tau"] == 16  # the AL-RNN defaults to the lab's sparse TF interval
    assert metrics["subregions_total"] == 4 and metrics["subregions_used"] <= 4
    names = ["attractor.png", "loss.png", "symbolic_graph.png", "attractor_subregions.png"]
    assert metrics["figures"] == names
    for name in names:
        assert (out / name).exists()
    model, meta = load_model(out / "model")
    assert model.n_networks == 2 and meta["system"] == "lorenz63"


def test_reconstruct_cli_bad_input(tmp_path, capsys):
    rc = main(["reconstruct", "--samples", "100", "--seq-len", "200", "--iterations", "1",
               "--out", str(tmp_path / "x"), "--quiet"])
    assert rc == 2
    assert "time steps" in capsys.readouterr().err
