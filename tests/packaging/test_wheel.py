"""The wheel has what a plain ``pip install onnxviz`` user needs: the bundled model, the converters.

The wheel is built from a copy of the checkout's files (tracked, and untracked but not ignored),
so a stale ``build/`` folder cannot hide a missing file. It is installed with ``--no-deps`` into a
fresh virtual environment outside the repository; third-party packages come from this
environment's site-packages through a ``.pth`` line (offline, and ``.pth`` files there, such as
an editable install of onnxviz, are not processed), so ``onnxviz`` itself can only come from the
wheel. The README's first command then runs from an empty temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Files a user's first commands read from the installed package.
REQUIRED = ("onnxviz/data/models/efficientnet_lite0.onnx", "onnxviz/data/models/shapes_cnn.onnx",
            "onnxviz/data/imagenet_classes.txt", "onnxviz/py.typed",
            "onnxviz/convert/__init__.py", "onnxviz/convert/pytorch.py",
            "onnxviz/convert/keras.py", "onnxviz/convert/metadata.py",
            "onnxviz/convert/quantize.py", "onnxviz/cli/convert.py")

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def _source_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (no build/, .venv or caches)."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                  cwd=ROOT).stdout
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder of a fresh venv with the wheel installed, the wheel's path)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the package's files")
    base = tmp_path_factory.mktemp("wheel")
    src = _source_copy(base / "src")
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", base / "dist"], cwd=base)
    (wheel,) = (base / "dist").glob("onnxviz-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False, symlinks=os.name != "nt")
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        cwd=base).stdout.strip())
    (purelib / "third_party_from_test_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          "-q", wheel], cwd=base)
    return bindir, wheel


def test_wheel_holds_the_bundled_models_converters_and_metadata(installed):
    _, wheel = installed
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    missing = [f for f in REQUIRED if f not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "models/", "converters/")) or "__pycache__" in n
                   for n in names)
    assert "License-Expression: Apache-2.0" in meta and "Project-URL: " in meta
    assert "Classifier: Typing :: Typed" in meta
    for extra in ("pytorch", "keras", "quantize"):
        assert f"Provides-Extra: {extra}" in meta


def test_demo_and_convert_help_run_from_an_empty_folder(installed, tmp_path):
    bindir, _ = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    where = _run([bindir / "python", "-c", "import onnxviz; print(onnxviz.__file__)"],
                 cwd=tmp_path, env=env).stdout.strip()
    assert Path(where).is_relative_to(bindir.parent), f"onnxviz imported from {where}"

    conv = _run([bindir / "onnxviz", "convert", "--help"], cwd=tmp_path, env=env).stdout
    for name in ("pytorch", "keras", "metadata", "quantize"):
        assert f"    {name} " in conv

    demo = _run([bindir / "onnxviz", "demo", "--quiet"], cwd=tmp_path, env=env, timeout=900)
    report = Path(demo.stdout.strip().splitlines()[-1])
    assert not report.is_absolute() or report.is_relative_to(tmp_path)
    report = tmp_path / report if not report.is_absolute() else report
    assert report == tmp_path / "onnxviz-demo" / "report.html"
    assert report.stat().st_size > 100_000 and (report.parent / "compare.png").is_file()
    assert "Egyptian cat" in report.read_text(encoding="utf-8")
