"""gptme-coordination's signing rule with nothing but Python's standard library.

The reference the tests hold coord to: a row's MAC is
base64(HMAC-SHA256(key, json.dumps(fields, sort_keys=True, separators=(",", ":")))).
"""
import base64
import hashlib
import hmac
import json


def canonical(fields) -> bytes:
    return json.dumps(list(fields), sort_keys=True, separators=(",", ":")).encode()


def sign(key: bytes, fields) -> str:
    return base64.b64encode(hmac.new(key, canonical(fields), hashlib.sha256).digest()).decode()


def verify(key, mac, fields) -> bool:
    if key is None or not mac:
        return False
    return hmac.compare_digest(sign(key, fields), mac)


def claim_fields(row):
    """[claimer, task_id, epoch, expires_at] of a work row (a dict)."""
    return [row["claimer"], row["task_id"], row["epoch"], row["expires_at"]]


def message_fields(row):
    """[sender, recipient or "", channel, body] of a messages row (a dict)."""
    return [row["sender"], row["recipient"] or "", row["channel"], row["body"]]


def read_secret(path) -> bytes:
    """A key file's bytes, stripped of surrounding whitespace, as gptme reads it."""
    with open(path, "rb") as f:
        return f.read().strip()
