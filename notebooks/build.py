"""Execute the notebooks at full size and save them with their outputs.

Usage (from the repository root)::

    .venv/bin/python notebooks/build.py                 # every notebook
    .venv/bin/python notebooks/build.py 02_em_from_the_notes

Each notebook is rebuilt from its percent script (the reviewed source), executed top to
bottom in a fresh ``python3`` kernel with the notebooks folder as working directory, and
written as ``.ipynb`` with outputs. ``BAYESGMM_FAST`` is removed from the kernel's
environment, so the committed outputs are the full-size analysis.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jupytext
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parent


def build(script: Path, timeout: int = 900) -> float:
    """Execute ``script`` and write the paired notebook; return the wall time in seconds."""
    nb = jupytext.read(script)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    env = {k: v for k, v in os.environ.items() if k != "BAYESGMM_FAST"}
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    ).execute(env=env)
    elapsed = time.perf_counter() - start
    jupytext.write(nb, script.with_suffix(".ipynb"), fmt="ipynb")
    jupytext.write(nb, script, fmt="py:percent")
    return elapsed


def main(names: list[str]) -> None:
    scripts = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem in names or s.name in names]
    for script in scripts:
        print(f"{script.name}: {build(script):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
