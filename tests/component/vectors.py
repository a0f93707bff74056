"""tests/vectors.json, for the component's pytest modules to parametrise over."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "tests" / "vectors.json").read_text())


def vector_keys(v: dict) -> list:
    """(agent, secret, retired) for every key of the vectors, retired ones included."""
    keys = []
    for agent, k in v["keys"].items():
        keys += [(agent, r.encode(), True) for r in k.get("retired", [])]
        keys.append((agent, k["current"].encode(), False))
    return keys


def describe(case: dict) -> str:
    """A vector's test id: its description."""
    return case["description"]
