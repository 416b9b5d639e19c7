"""Threads on a shared machine: importing dynrnn makes OpenMP's waiting threads sleep instead of
spin (``OMP_WAIT_POLICY=PASSIVE``) when torch is not loaded yet, and keeps a value the user set.
(The timing that motivates it is in ``dynrnn/__init__.py`` and ``benchmarks/busy.py``; tests never
assert wall-clock time.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PRINT = "import os; {imports}; print(os.environ.get('OMP_WAIT_POLICY'))"


def _policy(imports: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PRINT.format(imports=imports)], env=environ,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_sets_passive_wait_policy_before_torch_loads():
    assert _policy("import dynrnn") == "PASSIVE"
    assert _policy("import dynrnn.models") == "PASSIVE"  # the package's __init__ runs first


@pytest.mark.parametrize("value", ["ACTIVE", "passive"])
def test_users_value_is_kept(value):
    assert _policy("import dynrnn", OMP_WAIT_POLICY=value) == value


def test_nothing_is_set_once_torch_is_loaded():
    # OpenMP has read its environment already: setting the variable then would only mislead
    assert _policy("import torch; import dynrnn") == "None"
