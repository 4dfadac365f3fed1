"""after_import: a callback runs on a module right after its first import, or at once when it is loaded."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from mlfactor.import_hooks import after_import, clear_import_hooks


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path for throwaway modules; hooks and modules removed after."""
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    clear_import_hooks()
    for name in [n for n in sys.modules if n.startswith("hooked_")]:
        del sys.modules[name]


def test_callback_runs_before_importers_take_names(module_dir: Path) -> None:
    """A name replaced by the callback is what `from module import name` gets."""
    (module_dir / "hooked_a.py").write_text("def greet():\n    return 'original'\n")
    seen: list[str] = []

    def patch(module: ModuleType) -> None:
        seen.append(module.__name__)
        module.greet = lambda: "patched"  # type: ignore[attr-defined]

    after_import("hooked_a", patch)
    assert seen == []
    from hooked_a import greet  # type: ignore[import-not-found]

    assert greet() == "patched" and seen == ["hooked_a"]


def test_callback_runs_at_once_for_a_loaded_module(module_dir: Path) -> None:
    """A module imported before the registration is handed to the callback immediately."""
    (module_dir / "hooked_b.py").write_text("value = 1\n")
    import hooked_b  # type: ignore[import-not-found]

    after_import("hooked_b", lambda module: setattr(module, "value", 2))
    assert hooked_b.value == 2
