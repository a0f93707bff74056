"""Inputs of the component's pytest modules, from the environment
tests/component.sh sets:

    COORD_WASM            the component (coord_component.wasm)
    COORD_LIBCOORD        the extension without its suffix (target/release/libcoord);
                          test_crosscheck.py only
    COORD_FIXTURE_SHARED  a writable copy of tests/fixtures/gptme
    COORD_FIXTURE_GPTME   the fixture tests/gptme/write_fixture.py writes
    COORD_HISTORY         the directory tests/component/history_fixture.py writes
                          (signed-history databases); test_history.py only

A fixture directory holds coord.db, expected.json and secrets/. A test whose
input is missing fails (an error, never a skip).
"""
import os
from pathlib import Path

import pytest

from coord_wasm import Signing

# Test id -> the variable naming its directory.
FIXTURES = {"shared": "COORD_FIXTURE_SHARED", "gptme-written": "COORD_FIXTURE_GPTME"}


def env_path(name: str, *suffixes: str) -> Path:
    """The path in $name; fails the test if it is unset or (with any of
    suffixes appended) does not exist."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set (tests/component.sh sets it)", pytrace=False)
    path = Path(value)
    if not any(Path(value + s).exists() for s in suffixes or ("",)):
        pytest.fail(f"{name}={value}: no such file or directory", pytrace=False)
    return path


@pytest.fixture(scope="session")
def wasm() -> Path:
    return env_path("COORD_WASM")


@pytest.fixture(scope="session")
def libcoord() -> str:
    """The extension, as sqlite3's load_extension takes it (no suffix)."""
    return str(env_path("COORD_LIBCOORD", "", ".so"))


@pytest.fixture
def signing(wasm: Path) -> Signing:
    """A fresh instance of the component (compiled once per session)."""
    return Signing(str(wasm))


@pytest.fixture(params=list(FIXTURES))
def fixture_dir(request: pytest.FixtureRequest) -> Path:
    """Each fixture directory in turn."""
    path = env_path(FIXTURES[request.param])
    for name in ("coord.db", "expected.json", "secrets"):
        if not (path / name).exists():
            pytest.fail(f"{path}: no {name}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def history_dir() -> Path:
    """The signed-history databases and history.json."""
    path = env_path("COORD_HISTORY")
    for name in ("intact.db", "history.json"):
        if not (path / name).exists():
            pytest.fail(f"{path}: no {name}", pytrace=False)
    return path
