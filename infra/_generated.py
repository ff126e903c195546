"""Writing or checking the files the scripts under infra/ generate (one loop for all)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_or_check(outputs: dict[Path, str], check: bool, script: str) -> int:
    """Write each file whose text differs; with `check`, write nothing and return 1 (naming
    the stale files and `script`, which regenerates them) when any differs."""
    stale = []
    for path, text in outputs.items():
        if path.exists() and path.read_text() == text:
            continue
        if check:
            stale.append(path.relative_to(ROOT))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"out of date (run python {Path(script).resolve().relative_to(ROOT)}): "
              f"{', '.join(map(str, stale))}", file=sys.stderr)
        return 1
    return 0
