"""The documented examples run for real against the emulator."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as Airflow's DagBag does; pydantic resolves names there
    spec.loader.exec_module(module)
    return module


def test_client_quickstart_generates_and_saves_an_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RIVYA_API_KEY", raising=False)
    quickstart = load(ROOT / "docs" / "examples" / "client_quickstart.py")
    assert quickstart.main(["quickstart", str(tmp_path)]) == 0
    (image_path,) = tmp_path.iterdir()
    with Image.open(image_path) as image:
        assert image.size == (1024, 576)
    printed = capsys.readouterr().out
    assert "balance: 1000 credits" in printed
    assert "balance: 986 credits" in printed
    assert "rvya_sk_" not in printed


def test_the_client_layer_imports_no_airflow() -> None:
    code = (
        "import sys, rivya_provider.client\n"
        "print(any(m.startswith('airflow') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
