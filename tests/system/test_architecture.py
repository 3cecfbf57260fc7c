"""The layers of docs/architecture.md hold: import-linter's contracts (pyproject.toml), and what
importing a package may load."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(config: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "import-linter is a dev dependency (pyproject.toml)"
    argv = [exe, "--no-cache", *([] if config is None else ["--config", str(config)])]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_are_kept() -> None:
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_ground_module_importing_an_engine_breaks_the_contracts(tmp_path: Path) -> None:
    """The contracts are not vacuous: the same rules reject an upward import."""
    for package in ("core", "signaling"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "core" / "bad.py").write_text("import signaling\n")
    config = tmp_path / "contracts.ini"
    config.write_text(
        textwrap.dedent(
            """
            [importlinter]
            root_packages =
                core
                signaling
            [importlinter:contract:layers]
            name = layers
            type = layers
            layers =
                signaling
                core
            """
        )
    )
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None
    result = subprocess.run(
        [exe, "--no-cache", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "core.bad -> signaling" in result.stdout


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out.splitlines()[-1])}


SIGNALING_MODULES = "import pkgutil, importlib, signaling\n" + (
    "for m in pkgutil.iter_modules(signaling.__path__): importlib.import_module('signaling.' + m.name)"
)


@pytest.mark.parametrize(
    ("code", "never"),
    [
        # the signaling tier never loads the WebRTC stack (it only talks to workers)
        ("import signaling", {"aiortc", "aioice", "media", "recorder"}),
        (SIGNALING_MODULES, {"aiortc", "aioice"}),
        # the worker never loads the investigators' HTTP API or the signaling tier
        ("import visitation.worker", {"signaling", "web", "billing_hooks"}),
        # the client SDK stands alone: aiortc, rtpkit and its own modules
        (
            "import client.peer, client.session",
            {"core", "media", "recorder", "signaling", "billing_hooks", "visitation"},
        ),
    ],
)
def test_what_an_import_loads(code: str, never: set[str]) -> None:
    loaded = _loaded_after(code)
    assert not loaded & never, f"{code!r} loaded {sorted(loaded & never)}"
