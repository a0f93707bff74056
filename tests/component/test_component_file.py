"""The build output itself: a component (not a core module), and small.

    COORD_WASM=... target/venv/bin/python -m pytest tests/component/test_component_file.py
"""
from pathlib import Path

MAX_SIZE = 150 * 1024

# "\0asm", then version 0x0d and layer 1: a component. A core module has
# version 1, layer 0.
COMPONENT_HEADER = b"\x00asm\x0d\x00\x01\x00"


def test_component_is_smaller_than_150_kib(wasm: Path) -> None:
    assert wasm.stat().st_size < MAX_SIZE


def test_the_build_output_is_a_component_not_a_core_module(wasm: Path) -> None:
    assert wasm.read_bytes()[:8] == COMPONENT_HEADER
