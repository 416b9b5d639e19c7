"""The two README entry points: `dynrnn demo` and `dynrnn train` write what they promise."""

import json

import pytest

from dynrnn.cli import main
from dynrnn.zoo import Zoo


def test_demo_writes_figure_summary_and_zoo(tmp_path, capsys):
    assert main(["demo", "--networks", "2", "--steps", "60", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "flipflop_outputs.png").stat().st_size > 1000
    summary = (tmp_path / "summary.txt").read_text()
    assert "networks trained: 2" in summary
    assert len(Zoo(tmp_path / "zoo")) == 2


def test_train_adds_to_zoo_and_history(tmp_path, capsys):
    out = tmp_path / "zoo"
    args = ["train", "--task", "flipflop", "--n-bits", "2", "--networks", "3", "--units", "8",
            "--steps", "20", "--eval-every", "10", "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["networks"] == 3
    zoo = Zoo(out)
    assert len(zoo.query(n_units=8)) == 3
    assert zoo.has_result(f"history/{summary['entry']}")


def test_bad_value_is_one_clear_line(tmp_path, capsys):
    assert main(["train", "--n-bits", "0", "--out", str(tmp_path)]) == 2
    assert "n_bits" in capsys.readouterr().err


def test_unknown_task_is_rejected():
    with pytest.raises(SystemExit):
        main(["train", "--task", "nonsense"])
