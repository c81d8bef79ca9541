"""Checks what `sam build` produced: every compiled extension is built for aarch64 (the functions run on
arm64), and CommonLayer stays small. Pruning removes what the python3.12 Lambda runtime already ships
and only aws-xray-sdk drags in (botocore and its private dependencies)."""

import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

# Shipped by the python3.12 runtime, and pulled into the layer only through aws-xray-sdk -> botocore.
RUNTIME_PROVIDED = ("botocore", "dateutil", "six", "python_dateutil", "s3transfer", "boto3")
_ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64", 0x03: "i386", 0x28: "arm"}


@dataclass
class Extension:
    path: Path
    machine: str


def elf_machine(path: Path) -> str | None:
    """The architecture an ELF file is built for, or None if it is not ELF."""
    with path.open("rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    endian = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", header[18:20])
    return _ELF_MACHINES.get(machine, f"unknown(0x{machine:x})")


def compiled_extensions(root: Path) -> list[Extension]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and (path.suffix == ".so" or ".so." in path.name):
            machine = elf_machine(path)
            if machine:
                found.append(Extension(path, machine))
    return found


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def prune_runtime_provided(layer_python: Path) -> list[str]:
    removed = []
    for entry in sorted(layer_python.iterdir()):
        base = (entry.stem if entry.is_file() else entry.name).split("-", 1)[0].lower()
        if base in RUNTIME_PROVIDED and (entry.is_dir() or entry.suffix == ".py"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            removed.append(entry.name)
    return removed


def local_configuration(layer_python: Path) -> list[Path]:
    """Files of the layer's config/ that belong to local runs only: overlays, or routes that point at
    loopback or carry the sandbox's tokens."""
    found = []
    for path in sorted((layer_python / "config").glob("*")) if (layer_python / "config").is_dir() else []:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        if "local" in path.name or "127.0.0.1" in text or '"local-' in text:
            found.append(path)
    return found


def check_layer(build_dir: Path, *, max_mb: float, prune: bool) -> int:
    layer = build_dir / "CommonLayer" / "python"
    if not layer.is_dir():
        print(f"No built layer at {layer}; run sam build first", file=sys.stderr)
        return 2
    if prune:
        removed = prune_runtime_provided(layer)
        if removed:
            print(f"Pruned (the Lambda runtime ships them): {', '.join(removed)}")
    problems = 0
    extensions = compiled_extensions(build_dir)
    for ext in extensions:
        if ext.machine != "aarch64":
            problems += 1
            print(f"NOT aarch64: {ext.path.relative_to(build_dir)} is {ext.machine}", file=sys.stderr)
    print(f"Compiled extensions: {len(extensions)}, all aarch64: {problems == 0}")
    for local in local_configuration(layer):
        problems += 1
        print(f"Local configuration in the layer: {local.relative_to(build_dir)} (never deploy it)", file=sys.stderr)
    size_mb = tree_size(layer) / 1_048_576
    packages = sorted(
        ((tree_size(p) if p.is_dir() else p.stat().st_size, p.name) for p in layer.iterdir()), reverse=True
    )
    print(f"CommonLayer: {size_mb:.1f} MB unzipped (budget {max_mb:g} MB)")
    for size, name in packages[:12]:
        print(f"  {size / 1_048_576:6.2f} MB  {name}")
    if size_mb > max_mb:
        problems += 1
        print(f"CommonLayer is over its {max_mb:g} MB budget", file=sys.stderr)
    return 1 if problems else 0
