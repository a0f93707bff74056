"""coord's WASI component in Python's wasmtime (the `wasmtime` package's
component API): every vector of tests/vectors.json, every row of both
fixtures, and bad input.

    COORD_WASM=... COORD_FIXTURE_SHARED=... COORD_FIXTURE_GPTME=... \\
        target/venv/bin/python -m pytest tests/component/test_python_host.py

(tests/component.sh sets the variables; see conftest.py.)
"""
import hashlib
import hmac
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from coord_wasm import CoordError, Keyring, Signing, claim, message
from vectors import VECTORS, describe, vector_keys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import gptme_ref  # noqa: E402

ALICE = b"alice-secret-0123456789abcdef0123456789abcdef"


def reference_mac(key: bytes, fields: list) -> str:
    """gptme-coordination's rule, from the one reference (tests/python)."""
    return gptme_ref.sign(key, fields)


def payload_of(e: CoordError):
    """An error's payload, a record as a dict."""
    return vars(e.payload) if hasattr(e.payload, "__dict__") else e.payload


# --- the component's world ---------------------------------------------------

def test_imports_nothing(signing: Signing) -> None:
    assert signing.imports() == []


def test_exports_the_signing_interface(signing: Signing) -> None:
    assert signing.exports() == ["coord:signing/signing@0.1.0"]


# --- vectors -----------------------------------------------------------------

@pytest.fixture
def vector_kr(signing: Signing) -> Keyring:
    return signing.keyring_from_keys(vector_keys(VECTORS))


def test_at_least_15_sign_vectors() -> None:
    assert len(VECTORS["sign"]) >= 15


@pytest.mark.parametrize("case", VECTORS["sign"], ids=describe)
def test_sign_vector(signing: Signing, vector_kr: Keyring, case: dict) -> None:
    f, agent, want = case["fields"], case["agent"], case["mac"]
    assert signing.canonical(f) == case["canonical"].encode()
    mac = vector_kr.sign(agent, f)
    assert mac == want
    assert vector_kr.status(agent, mac, f) == "verified"
    assert vector_kr.verify(agent, mac, f)
    # The claim and message forms sign the same bytes.
    if case["description"].startswith("claim"):
        c = claim(*f)
        assert vector_kr.sign_claim(c) == want
        assert vector_kr.claim_status(c, want) == "verified"
    if case["description"].startswith("message"):
        m = message(f[0], f[1] or None, f[2], f[3])
        assert vector_kr.sign_message(m) == want
        assert vector_kr.verify_message(m, want)


@pytest.mark.parametrize("case", VECTORS["verify"], ids=describe)
def test_verify_vector(vector_kr: Keyring, case: dict) -> None:
    f, agent, mac, want = case["fields"], case["agent"], case["mac"], case["status"]
    authentic = want in ("verified", "retired_key")
    got = (vector_kr.status(agent, mac, f).replace("-", "_"),
           vector_kr.claim_status(claim(*f), mac).replace("-", "_"),
           vector_kr.verify(agent, mac, f))
    assert got == (want, want, authentic)


# --- the two fixtures --------------------------------------------------------

def fixture_keyring(signing: Signing, fixture_dir: Path) -> tuple[Keyring, int]:
    """A keyring with the fixture's secrets/ loaded, and how many."""
    kr = signing.keyring()
    loaded = 0
    for secret in sorted((fixture_dir / "secrets").glob("*.secret")):
        kr.add_key(secret.name[: -len(".secret")], secret.read_bytes().strip())
        loaded += 1
    return kr, loaded


def expected(fixture_dir: Path) -> dict:
    return json.loads((fixture_dir / "expected.json").read_text())


def test_fixture_keys_loaded(signing: Signing, fixture_dir: Path) -> None:
    assert fixture_keyring(signing, fixture_dir)[1] >= 2


def test_fixture_rows_seen(fixture_dir: Path) -> None:
    want = expected(fixture_dir)
    assert len(want["work"]) + len(want["messages"]) > 10


def test_fixture_work_rows(signing: Signing, fixture_dir: Path) -> None:
    """Every work row verifies, or not, as expected.json says."""
    kr, _ = fixture_keyring(signing, fixture_dir)
    got = {}
    db = sqlite3.connect(fixture_dir / "coord.db")
    for task, claimer, epoch, expires, mac in db.execute(
            "SELECT task_id, claimer, epoch, expires_at, hmac FROM work"):
        if claimer is None or expires is None:
            # Unclaimed row: the generic form, NULLs as null.
            got[task] = kr.verify(claimer or "", mac, [claimer, task, epoch, expires])
        else:
            got[task] = kr.verify_claim(claim(claimer, task, epoch, expires), mac)
    assert got == expected(fixture_dir)["work"]


def test_fixture_message_rows(signing: Signing, fixture_dir: Path) -> None:
    """Every message row verifies, or not, as expected.json says."""
    kr, _ = fixture_keyring(signing, fixture_dir)
    db = sqlite3.connect(fixture_dir / "coord.db")
    got = {str(mid): kr.verify_message(message(sender, recipient, channel, body), mac)
           for mid, sender, recipient, channel, body, mac in db.execute(
               "SELECT id, sender, recipient, channel, body, hmac FROM messages")}
    assert got == expected(fixture_dir)["messages"]


# --- bad input ---------------------------------------------------------------

@pytest.fixture
def alice_kr(signing: Signing) -> Keyring:
    kr = signing.keyring()
    kr.add_key("alice", ALICE)
    return kr


def test_empty_list_canonical(signing: Signing) -> None:
    assert signing.canonical([]) == b"[]"


def test_empty_list_signs_as_python_does(alice_kr: Keyring) -> None:
    assert alice_kr.sign("alice", []) == reference_mac(ALICE, [])


HUGE_LIST = [i if i % 2 == 0 else f"f{i}\u00e9" for i in range(100_000)]
HUGE_TEXT = ["x\U0001F600\n" * (1 << 20)]  # 5 MiB of UTF-8


def test_huge_list_same_mac_as_python(alice_kr: Keyring) -> None:
    assert alice_kr.sign("alice", HUGE_LIST) == reference_mac(ALICE, HUGE_LIST)


def test_huge_text_same_mac_as_python(alice_kr: Keyring) -> None:
    assert alice_kr.sign("alice", HUGE_TEXT) == reference_mac(ALICE, HUGE_TEXT)


def test_valid_utf8_text_bytes_encode_like_text(signing: Signing) -> None:
    assert signing.canonical([("text-bytes", "caf\u00e9".encode())]) == b'["caf\\u00e9"]'


def test_unknown_agent_verify_false_status_unknown_agent(alice_kr: Keyring) -> None:
    assert alice_kr.verify(
        "stranger", "P9oW9Pk2MPvEywI7ec/qxd5SwqWsM148KxpTntkdp+I=", ["x"]) is False
    assert alice_kr.status("stranger", "AAAA", ["x"]) == "unknown-agent"


MALFORMED_MACS = ["", None, "not base64 at all", "====",
                  "61REQfKaPiBoFJmqKCe2lUS8FflwhV/w9YhluVP1r9E", "\x00\uffff\u00e9",
                  "A" * (1 << 20)]


@pytest.mark.parametrize("mac", MALFORMED_MACS, ids=lambda mac: repr(mac)[:26])
def test_malformed_mac(alice_kr: Keyring, mac) -> None:
    want = "unsigned" if not mac else "bad-mac"
    assert alice_kr.status("alice", mac, ["alice"]) == want
    assert alice_kr.verify("alice", mac, ["alice"]) is False


BAD_UTF8 = ["a", ("text-bytes", b"a\xff\xfe")]

# Calls the component must refuse with its `error` variant (never a trap):
# name -> (call(signing, alice's keyring), tag, payload; None: any payload).
REFUSED = {
    "invalid UTF-8 text-bytes: sign": (lambda s, kr: kr.sign("alice", BAD_UTF8), "invalid-utf8", 1),
    "invalid UTF-8 text-bytes: status":
        (lambda s, kr: kr.status("alice", "x", BAD_UTF8), "invalid-utf8", 1),
    "invalid UTF-8 text-bytes: verify":
        (lambda s, kr: kr.verify("alice", "x", BAD_UTF8), "invalid-utf8", 1),
    "invalid UTF-8 text-bytes: canonical": (lambda s, kr: s.canonical(BAD_UTF8), "invalid-utf8", 1),
    "blob: sign": (lambda s, kr: kr.sign("alice", [None, ("blob", b"\x01")]), "blob", 1),
    "unknown agent: sign": (lambda s, kr: kr.sign("stranger", ["x"]), "unknown-agent", "stranger"),
    "31-byte key": (lambda s, kr: kr.add_key("bob", b"0" * 31), "key-too-short",
                    {"len": 31, "min": 32}),
    **{f"agent id {agent!r}": (lambda s, kr, agent=agent: kr.add_key(agent, ALICE),
                               "invalid-agent-id", None)
       for agent in ["", "../alice", "a/b", "tab\there"]},
    "from-keys with a short key": (lambda s, kr: s.keyring_from_keys(
        [("alice", ALICE, False), ("bob", b"short", False)]), "key-too-short", None),
}


@pytest.mark.parametrize("name", REFUSED)
def test_refused(signing: Signing, alice_kr: Keyring, name: str) -> None:
    call, tag, payload = REFUSED[name]
    with pytest.raises(CoordError) as e:
        call(signing, alice_kr)
    assert e.value.tag == tag
    if payload is not None:
        assert payload_of(e.value) == payload


def test_instance_still_usable_after_bad_input(signing: Signing, alice_kr: Keyring) -> None:
    """The refusals, malformed MACs and the 5 MiB text above on one instance,
    which then still signs. (Not the 100k-field list: 4 s in this host.)"""
    for call, _, _ in REFUSED.values():
        with pytest.raises(CoordError):
            call(signing, alice_kr)
    for mac in MALFORMED_MACS:
        alice_kr.status("alice", mac, ["alice"])
        alice_kr.verify("alice", mac, ["alice"])
    alice_kr.sign("alice", HUGE_TEXT)
    assert alice_kr.sign("alice", []) == "YDWwv2koa0aEqaOJPXxspQ4zZj47GmYtZsPNOWd57tw="


# --- rotation and retired keys -----------------------------------------------

CAROL_1 = b"carol-key-1-0123456789abcdef0123456789abcdef"
CAROL_2 = b"carol-key-2-0123456789abcdef0123456789abcdef"
DAVE_OLD = b"dave-old-0123456789abcdef0123456789abcdef"
CAROL_CLAIM = ("carol", "t1", 1, "x")


@pytest.fixture
def rotated(alice_kr: Keyring) -> tuple[Keyring, str]:
    """alice; carol rotated from CAROL_1 to CAROL_2 (and a claim signed with
    CAROL_1); dave with a retired key only."""
    alice_kr.add_key("carol", CAROL_1)
    old = alice_kr.sign_claim(claim(*CAROL_CLAIM))
    alice_kr.add_key("carol", CAROL_2)
    alice_kr.add_retired_key("dave", DAVE_OLD)
    return alice_kr, old


def test_rotation_old_keys_row_is_retired_key(rotated) -> None:
    kr, old = rotated
    assert kr.claim_status(claim(*CAROL_CLAIM), old) == "retired-key"
    assert kr.verify_claim(claim(*CAROL_CLAIM), old)


def test_rotation_new_rows_sign_with_the_new_key(rotated) -> None:
    kr, _ = rotated
    assert kr.sign_claim(claim(*CAROL_CLAIM)) == reference_mac(CAROL_2, list(CAROL_CLAIM))


def test_retired_only_agent_cannot_sign(rotated) -> None:
    kr, _ = rotated
    with pytest.raises(CoordError) as e:
        kr.sign("dave", ["x"])
    assert (e.value.tag, e.value.payload) == ("no-current-key", "dave")


def test_fingerprint_is_the_documented_hmac_label(alice_kr: Keyring) -> None:
    want = hmac.new(ALICE, b"coord key fingerprint v1", hashlib.sha256).hexdigest()[:16]
    assert alice_kr.fingerprint("alice") == want


def test_no_fingerprint_without_a_current_key(rotated) -> None:
    kr, _ = rotated
    assert kr.fingerprint("dave") is None


def test_agents_listed_in_order(rotated) -> None:
    kr, _ = rotated
    assert kr.agents() == ["alice", "carol", "dave"]


def test_remove_agent_forgets_its_keys(rotated) -> None:
    kr, old = rotated
    assert kr.remove_agent("carol")
    assert kr.claim_status(claim(*CAROL_CLAIM), old) == "unknown-agent"
