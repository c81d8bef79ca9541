"""The build check recognises architectures from ELF headers and prunes what the runtime ships."""

import struct
from pathlib import Path

from devkit.layer import check_layer, elf_machine, prune_runtime_provided


def fake_elf(path: Path, machine: int) -> None:
    header = b"\x7fELF" + bytes([2, 1, 1]) + b"\x00" * 9 + struct.pack("<HH", 3, machine)
    path.write_bytes(header + b"\x00" * 44)


def test_elf_machine(tmp_path: Path) -> None:
    fake_elf(tmp_path / "a.so", 0xB7)
    fake_elf(tmp_path / "b.so", 0x3E)
    (tmp_path / "c.so").write_bytes(b"not elf")
    assert [elf_machine(tmp_path / n) for n in ("a.so", "b.so", "c.so")] == ["aarch64", "x86_64", None]


def build_dir(tmp_path: Path, machine: int) -> Path:
    layer = tmp_path / "CommonLayer" / "python"
    (layer / "botocore").mkdir(parents=True)
    (layer / "botocore" / "big.json").write_bytes(b"x" * 1000)
    (layer / "six.py").write_text("")
    (layer / "pydantic_core").mkdir()
    fake_elf(layer / "pydantic_core" / "_core.so", machine)
    return tmp_path


def test_x86_extension_fails_the_check(tmp_path: Path) -> None:
    assert check_layer(build_dir(tmp_path, 0x3E), max_mb=30, prune=True) == 1


def test_arm64_build_passes_and_is_pruned(tmp_path: Path) -> None:
    root = build_dir(tmp_path, 0xB7)
    assert check_layer(root, max_mb=30, prune=True) == 0
    assert sorted(p.name for p in (root / "CommonLayer" / "python").iterdir()) == ["pydantic_core"]


def test_size_budget(tmp_path: Path) -> None:
    assert check_layer(build_dir(tmp_path, 0xB7), max_mb=0.0001, prune=False) == 1


def test_prune_keeps_unrelated_packages(tmp_path: Path) -> None:
    (tmp_path / "sixth_sense").mkdir()
    (tmp_path / "boto3").mkdir()
    assert prune_runtime_provided(tmp_path) == ["boto3"]


def test_local_configuration_in_the_layer_fails_the_check(tmp_path: Path) -> None:
    root = build_dir(tmp_path, 0xB7)
    config = root / "CommonLayer" / "python" / "config"
    config.mkdir(parents=True, exist_ok=True)
    shipped = Path(__file__).resolve().parents[2] / "layers/common/config/bridge.json"
    (config / "bridge.json").write_text(shipped.read_text())
    assert check_layer(root, max_mb=30, prune=False) == 0  # the shipped routes file holds only references
    (config / "bridge.local.json").write_text('{"secrets": {}}')
    assert check_layer(root, max_mb=30, prune=False) == 1
    (config / "bridge.local.json").unlink()
    (config / "bridge.json").write_text('{"routes": {"r": {"target": {"base_url": "http://127.0.0.1:3100"}}}}')
    assert check_layer(root, max_mb=30, prune=False) == 1
