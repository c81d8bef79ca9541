"""Bytecode for the code the benches import, as the deployed layer ships it (layers/common/Makefile)."""

import compileall
import py_compile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def compile_like_the_layer() -> None:
    """`sam build` ships the layer compiled (Lambda cannot write bytecode to it), so a cold start there reads
    .pyc; the benches' fresh interpreters must too, or each probe compiles stale sources and measures that.
    Timestamp-checked here, not the layer's unchecked-hash, so an edit is never measured with old bytecode."""
    for folder in ("layers/common/martech_bridge", "functions"):
        compileall.compile_dir(
            REPO / folder, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP, workers=0
        )
