"""coord's WASI component from Python, on the `wasmtime` package's component API.

A thin wrapper used by test_python_host.py and test_crosscheck.py;
docs/component.md shows the same calls without it.
"""
from __future__ import annotations

import functools
from typing import Any, Optional

import wasmtime
from wasmtime import component as wc

INTERFACE = "coord:signing/signing@0.1.0"


class CoordError(Exception):
    """An `error` variant returned by the component (tag, payload)."""

    def __init__(self, variant: wc.Variant) -> None:
        super().__init__(f"{variant.tag}: {variant.payload!r}")
        self.tag = variant.tag
        self.payload = variant.payload


def record(**fields: Any) -> wc.Record:
    """A WIT record; keyword names use `_` for WIT's `-` (task_id -> task-id)."""
    r = wc.Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def field(value: Any) -> wc.Variant:
    """A Python value as a WIT `field`: None, int, float, str, or
    ("text-bytes" | "blob", bytes)."""
    if value is None:
        return wc.Variant("null")
    if isinstance(value, bool):
        raise TypeError("bool is not a field")
    if isinstance(value, int):
        return wc.Variant("integer", value)
    if isinstance(value, float):
        return wc.Variant("real", value)
    if isinstance(value, str):
        return wc.Variant("text", value)
    if isinstance(value, tuple) and value[0] in ("text-bytes", "blob"):
        return wc.Variant(value[0], bytes(value[1]))
    raise TypeError(f"not a field: {value!r}")


def claim(claimer: str, task_id: str, epoch: int, expires_at: str) -> wc.Record:
    return record(claimer=claimer, task_id=task_id, epoch=epoch, expires_at=expires_at)


def message(sender: str, recipient: Optional[str], channel: str, body: str) -> wc.Record:
    return record(sender=sender, recipient=recipient, channel=channel, body=body)


def event(seq: int, prev: str, op: str, subject: str, at: str, agent: str, state: str,
          hmac: Optional[str]) -> wc.Record:
    """A WIT `event`: a coord_events row, in its column order."""
    return record(seq=seq, prev=prev, op=op, subject=subject, at=at, agent=agent, state=state,
                  hmac=hmac)


def checkpoint(agent: str, origin: str, size: int, head: str, at: str,
               hmac: Optional[str]) -> wc.Record:
    """A WIT `checkpoint`: a coord_checkpoints row without its id."""
    return record(agent=agent, origin=origin, size=size, head=head, at=at, hmac=hmac)


def position(origin: str, size: int, head: str) -> wc.Record:
    """A WIT `log-position`."""
    return record(origin=origin, size=size, head=head)


@functools.lru_cache(maxsize=None)
def _compile(path: str) -> tuple[wasmtime.Engine, wc.Component]:
    """Compiles a component once per path; every instance shares it."""
    engine = wasmtime.Engine()
    return engine, wc.Component.from_file(engine, path)


class Signing:
    """One instance of the component (its own store): its exported functions
    by WIT name."""

    def __init__(self, path: str) -> None:
        self.engine, self.component = _compile(str(path))
        self.store = wasmtime.Store(self.engine)
        # No WASI, no imports: an empty linker instantiates it.
        self.instance = wc.Linker(self.engine).instantiate(self.store, self.component)
        self._iface = self.instance.get_export_index(self.store, INTERFACE)
        if self._iface is None:
            raise RuntimeError(f"component does not export {INTERFACE}")
        self._funcs: dict[str, wc.Func] = {}

    def imports(self) -> list[str]:
        return sorted(self.component.type.imports(self.engine))

    def exports(self) -> list[str]:
        return sorted(self.component.type.exports(self.engine))

    def call(self, name: str, *args: Any) -> Any:
        func = self._funcs.get(name)
        if func is None:
            index = self.instance.get_export_index(self.store, name, self._iface)
            if index is None:
                raise RuntimeError(f"no export {name}")
            func = self.instance.get_func(self.store, index)
            assert func is not None
            self._funcs[name] = func
        return func(self.store, *args)

    def result(self, name: str, *args: Any) -> Any:
        """Calls a function returning `result<T, error>`: T, or raises CoordError."""
        value = self.call(name, *args)
        if isinstance(value, wc.Variant):
            raise CoordError(value)
        return value

    def canonical(self, fields: list) -> bytes:
        return self.result("canonical", [field(f) for f in fields])

    def event_link(self, e: wc.Record) -> str:
        return self.call("event-link", e)

    def check_log(self, kr: "Keyring", events: list, after: Optional[wc.Record] = None) -> wc.Record:
        """The `log-report` of `events` (a whole log, or the run after `after`)."""
        return self.call("check-log", kr.handle, events, after)

    def checkpoint_consistency(self, cp: wc.Record, events: list) -> str:
        return self.call("checkpoint-consistency", cp, events)

    def keyring(self) -> "Keyring":
        return Keyring(self, self.call("[constructor]keyring"))

    def keyring_from_keys(self, keys: list[tuple[str, bytes, bool]]) -> "Keyring":
        recs = [record(agent=a, secret=s, retired=r) for a, s, r in keys]
        return Keyring(self, self.result("[static]keyring.from-keys", recs))


class Keyring:
    """A `keyring` resource handle."""

    def __init__(self, signing: Signing, handle: wc.ResourceAny) -> None:
        self.s = signing
        self.handle = handle

    def _m(self, method: str, *args: Any) -> Any:
        return self.s.call(f"[method]keyring.{method}", self.handle, *args)

    def _r(self, method: str, *args: Any) -> Any:
        return self.s.result(f"[method]keyring.{method}", self.handle, *args)

    def add_key(self, agent: str, secret: bytes) -> None:
        self._r("add-key", agent, secret)

    def add_retired_key(self, agent: str, secret: bytes) -> None:
        self._r("add-retired-key", agent, secret)

    def remove_agent(self, agent: str) -> bool:
        return self._m("remove-agent", agent)

    def agents(self) -> list[str]:
        return self._m("agents")

    def fingerprint(self, agent: str) -> Optional[str]:
        return self._m("fingerprint", agent)

    def sign(self, agent: str, fields: list) -> str:
        return self._r("sign", agent, [field(f) for f in fields])

    def verify(self, agent: str, mac: Optional[str], fields: list) -> bool:
        return self._r("verify", agent, mac, [field(f) for f in fields])

    def status(self, agent: str, mac: Optional[str], fields: list) -> str:
        return self._r("status", agent, mac, [field(f) for f in fields])

    def sign_claim(self, c: wc.Record) -> str:
        return self._r("sign-claim", c)

    def verify_claim(self, c: wc.Record, mac: Optional[str]) -> bool:
        return self._m("verify-claim", c, mac)

    def claim_status(self, c: wc.Record, mac: Optional[str]) -> str:
        return self._m("claim-status", c, mac)

    def sign_message(self, m: wc.Record) -> str:
        return self._r("sign-message", m)

    def verify_message(self, m: wc.Record, mac: Optional[str]) -> bool:
        return self._m("verify-message", m, mac)

    def message_status(self, m: wc.Record, mac: Optional[str]) -> str:
        return self._m("message-status", m, mac)

    def sign_event(self, e: wc.Record) -> str:
        return self._r("sign-event", e)

    def event_status(self, e: wc.Record) -> str:
        return self._m("event-status", e)

    def sign_checkpoint(self, cp: wc.Record) -> str:
        return self._r("sign-checkpoint", cp)

    def checkpoint_status(self, cp: wc.Record) -> str:
        return self._m("checkpoint-status", cp)
