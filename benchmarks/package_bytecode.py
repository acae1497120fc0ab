"""Bytecode for bayling-data's own modules before a benchmark times any process.

``pip install`` writes it for an installed package (OpusFilter's venv has it), but a checkout
installed in editable mode compiles its modules on first import, and with
PYTHONDONTWRITEBYTECODE=1 (set on some CI and sandbox machines) it does so again in every process:
about 0.1 s of each start of ``bayling-data`` here. The timed runs read what this writes.
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bayling_data"


def compile_package() -> None:
    """Write ``__pycache__`` for every module of the package (a no-op where it is current)."""
    if not compileall.compile_dir(str(PACKAGE), quiet=1):
        raise SystemExit(f"{PACKAGE}: some module does not compile")
