"""mlfactor.skops_io: skops.io loads without dragging torch into the process, and nothing else changes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed (make install-search adds it)"
)


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter of this venv and return its stdout (failing on a non-zero exit)."""
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@needs_torch
def test_skops_loads_without_torch_and_torch_still_imports_after() -> None:
    """A skops round trip leaves torch unimported; afterwards torch and sklearn's shim import as usual."""
    out = run_python(
        """
        import sys
        from sklearn.linear_model import LogisticRegression
        from mlfactor.skops_io import skops_io
        sio = skops_io()
        model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
        again = sio.loads(sio.dumps(model))
        print("torch" in sys.modules, again.predict([[1.0]])[0], sio is skops_io())
        import torch
        import sklearn.externals.array_api_compat.torch as shim
        print(shim.__name__, torch.tensor([1]).item())
        """
    )
    assert out.splitlines() == ["False 1 True", "sklearn.externals.array_api_compat.torch 1"]


@needs_torch
def test_a_process_that_imported_torch_keeps_it() -> None:
    """When torch is already imported, skops.io loads with it in place (nothing is hidden)."""
    out = run_python(
        """
        import sys
        import torch
        from mlfactor.skops_io import skops_io
        skops_io()
        print(sys.modules["torch"] is torch, "sklearn.externals.array_api_compat.torch" in sys.modules)
        """
    )
    assert out == "True True"


@needs_torch
def test_after_the_kernel_hook_a_plain_skops_import_leaves_torch_out() -> None:
    """After the hook every pipeline kernel installs, skops imported plainly (as MLflow does) skips torch."""
    out = run_python(
        """
        import sys
        from mlfactor.skops_io import hide_array_libraries_from_estimator_walk
        hide_array_libraries_from_estimator_walk()
        import skops.io
        from sklearn.utils import all_estimators
        print("torch" in sys.modules, len(all_estimators()) > 100)
        """
    )
    assert out == "False True"


@needs_torch
def test_a_pipeline_kernel_s_extension_installs_the_hook() -> None:
    """The extension every pipeline kernel loads (kernel_setup) keeps torch out of a later skops import."""
    out = run_python(
        """
        import sys
        from mlfactor.kernel_setup import load_ipython_extension
        load_ipython_extension(object())  # a shell without display formatters: figures part is skipped
        import skops.io
        print("torch" in sys.modules)
        """
    )
    assert out == "False"
