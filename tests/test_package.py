"""The package root: its entry points resolve to the library's objects, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dials_lib


def test_entry_points_are_the_library_objects() -> None:
    from dials_lib.envs import make_global, make_local
    from dials_lib.training.run_config import RunConfig, config_from_preset
    from dials_lib.training.runner import train

    assert dials_lib.RunConfig is RunConfig and dials_lib.config_from_preset is config_from_preset
    assert dials_lib.train is train and dials_lib.make_global is make_global and dials_lib.make_local is make_local
    assert set(dials_lib.__all__) <= set(dir(dials_lib))
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        dials_lib.trian  # noqa: B018


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, dials_lib, dials_lib.paths; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
