"""Shared fixtures: the bundled knowledge base, the console script, the acceptance folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jakinib

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JAKINIB_SHARED", ROOT.parent / "shared"))
SCRIPT = Path(sys.executable).with_name("jakinib")


@pytest.fixture(scope="session")
def kb():
    return jakinib.load()


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)


def run_cli(*args: str, cwd: Path | None = None) -> CliResult:
    """Run the installed console script, as a user would."""
    assert SCRIPT.exists(), f"console script not installed at {SCRIPT}"
    proc = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    return CliResult(proc)


@pytest.fixture
def cli():
    return run_cli
