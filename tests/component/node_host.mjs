// Node host for coord's WASI component, transpiled to JS with jco: a
// node:test file.
//
//   COORD_WASM=... COORD_JCO_MODULE=... COORD_FIXTURE_SHARED=... COORD_FIXTURE_GPTME=... COORD_HISTORY=... \
//       node --test tests/component/node_host.mjs
//
// COORD_JCO_MODULE is the module `jco transpile` wrote (it imports nothing:
// the component has no imports, so no WASI shim is loaded); COORD_WASM the
// component it was transpiled from (for `jco wit`). A fixture directory holds
// rows.json, which tests/component/fixture_rows.py dumps from its coord.db
// (Node 20 has no SQLite), and secrets/. COORD_HISTORY is the directory
// tests/component/history_fixture.py writes (history.json). tests/component.sh
// sets them all; a missing one fails the tests that need it.
import { createHmac } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, test } from "node:test";
import assert from "node:assert/strict";

// The path in process.env[name]; throws (failing the test or the file) if
// it is unset or missing.
function input(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/component.sh sets it)`);
  if (!existsSync(value)) throw new Error(`${name}=${value}: no such file or directory`);
  return value;
}

const modulePath = input("COORD_JCO_MODULE");
const { signing } = await import(pathToFileURL(resolve(modulePath)).href);
const { Keyring } = signing;
const here = fileURLToPath(new URL(".", import.meta.url));
const v = parseJson(readFileSync(join(here, "..", "vectors.json"), "utf8"));

// JSON with integers as BigInt: JSON.parse would round 64-bit epochs, and
// Node 20 has no reviver source access. Integers are digit-only tokens;
// Python writes every float with `.` or `e`.
function parseJson(text) {
  let i = 0;
  const ws = () => { while (/\s/.test(text[i])) i++; };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++; const o = {}; ws();
      if (text[i] === "}") { i++; return o; }
      for (;;) {
        ws(); const k = value(); ws(); i++; // ':'
        o[k] = value(); ws();
        if (text[i++] === "}") return o;
      }
    }
    if (c === "[") {
      i++; const a = []; ws();
      if (text[i] === "]") { i++; return a; }
      for (;;) {
        a.push(value()); ws();
        if (text[i++] === "]") return a;
      }
    }
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const s = JSON.parse(text.slice(i, j + 1));
      i = j + 1;
      return s;
    }
    const m = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 40));
    if (!m) throw new SyntaxError(`bad JSON at ${i}`);
    i += m[0].length;
    if (/^-?\d+$/.test(m[0])) return BigInt(m[0]);
    return JSON.parse(m[0]);
  };
  return value();
}

const field = (v) => {
  if (v === null) return { tag: "null" };
  if (typeof v === "bigint") return { tag: "integer", val: v };
  if (typeof v === "number") return { tag: "real", val: v };
  if (typeof v === "string") return { tag: "text", val: v };
  throw new TypeError(`not a field: ${v}`);
};
const fields = (list) => list.map(field);
const enc = (s) => new TextEncoder().encode(s);
const claim = ([claimer, taskId, epoch, expiresAt]) => ({ claimer, taskId, epoch, expiresAt });
const message = ([sender, recipient, channel, body]) =>
  ({ sender, recipient: recipient === "" ? undefined : recipient, channel, body });
const snake = (s) => s.replaceAll("-", "_");

// Python's json.dumps(..., separators=(",", ":")) for text, integers and null.
const pyDumps = (list) => "[" + list.map((v) =>
  v === null ? "null" : typeof v === "bigint" ? v.toString()
    : JSON.stringify(v).replace(/[\u007f-\uffff]/g,
      (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"))).join(",") + "]";
const hmacB64 = (key, bytes) => createHmac("sha256", key).update(bytes).digest("base64");

// The `error` variant of a call that must fail: jco throws it as
// ComponentError with the variant in `payload`.
function errorOf(fn) {
  try { fn(); } catch (e) {
    if (e?.payload && typeof e.payload.tag === "string") return e.payload;
    throw e;
  }
  return null;
}

// --- the component as jco sees it --------------------------------------------
describe("jco", () => {
  test("transpiled module imports nothing (no WASI shim)", () => {
    const js = readFileSync(modulePath, "utf8");
    assert.doesNotMatch(js, /preview2-shim/);
    assert.doesNotMatch(js, /^import /m);
  });
  test("jco wit: the world exports coord:signing/signing@0.1.0 and imports nothing", (t) => {
    const jco = join(here, "node_modules", ".bin", "jco");
    const r = spawnSync(jco, ["wit", input("COORD_WASM")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    t.diagnostic(r.stdout.slice(r.stdout.indexOf("world")).trim());
    assert.match(r.stdout, /export coord:signing\/signing@0\.1\.0/);
    assert.doesNotMatch(r.stdout, /^\s*import /m);
  });
});

// --- vectors ----------------------------------------------------------------
describe("vectors", () => {
  const keys = [];
  for (const [agent, k] of Object.entries(v.keys)) {
    for (const r of k.retired ?? []) keys.push({ agent, secret: enc(r), retired: true });
    keys.push({ agent, secret: enc(k.current), retired: false });
  }
  const kr = Keyring.fromKeys(keys);
  test("at least 15 sign cases", () => assert.ok(v.sign.length >= 15, `${v.sign.length}`));
  for (const c of v.sign) {
    test(`sign vector: ${c.description}`, () => {
      const f = fields(c.fields);
      assert.equal(Buffer.from(signing.canonical(f)).toString(), c.canonical);
      const mac = kr.sign(c.agent, f);
      assert.equal(mac, c.mac);
      assert.equal(kr.status(c.agent, mac, f), "verified");
      assert.equal(kr.verify(c.agent, mac, f), true);
      // The claim and message forms sign the same bytes.
      if (c.description.startsWith("claim")) {
        const cl = claim(c.fields);
        assert.equal(kr.signClaim(cl), c.mac);
        assert.equal(kr.claimStatus(cl, c.mac), "verified");
      }
      if (c.description.startsWith("message")) {
        const m = message(c.fields);
        assert.equal(kr.signMessage(m), c.mac);
        assert.equal(kr.verifyMessage(m, c.mac), true);
      }
    });
  }
  for (const c of v.verify) {
    test(`verify vector: ${c.description}`, () => {
      const f = fields(c.fields);
      const mac = c.mac ?? undefined;
      const authentic = c.status === "verified" || c.status === "retired_key";
      assert.deepEqual(
        [snake(kr.status(c.agent, mac, f)), snake(kr.claimStatus(claim(c.fields), mac)),
          kr.verify(c.agent, mac, f)],
        [c.status, c.status, authentic]);
    });
  }
});

// --- the two fixtures -------------------------------------------------------
for (const [label, name] of [["shared", "COORD_FIXTURE_SHARED"],
  ["gptme-written", "COORD_FIXTURE_GPTME"]]) {
  describe(`${label} fixture`, () => {
    const dir = input(name);
    const rows = parseJson(readFileSync(join(dir, "rows.json"), "utf8"));
    const secretsDir = join(dir, "secrets");
    // A keyring with the fixture's secrets loaded, and how many.
    const keyring = () => {
      const kr = new Keyring();
      let loaded = 0;
      for (const file of readdirSync(secretsDir).sort()) {
        if (!file.endsWith(".secret")) continue;
        const secret = readFileSync(join(secretsDir, file)).toString("latin1").trim();
        kr.addKey(file.slice(0, -".secret".length), Buffer.from(secret, "latin1"));
        loaded++;
      }
      return [kr, loaded];
    };
    test("keys loaded", () => {
      const [, loaded] = keyring();
      assert.ok(loaded >= 2, `${loaded} keys`);
    });
    test("work rows verify as expected.json says", () => {
      const [kr] = keyring();
      const got = {};
      for (const w of rows.work) {
        const mac = w.hmac ?? undefined;
        got[w.task_id] = w.claimer === null || w.expires_at === null
          // Unclaimed row: the generic form, NULLs as null.
          ? kr.verify(w.claimer ?? "", mac, fields([w.claimer, w.task_id, w.epoch, w.expires_at]))
          : kr.verifyClaim(claim([w.claimer, w.task_id, w.epoch, w.expires_at]), mac);
      }
      assert.deepEqual(got, rows.expected.work);
    });
    test("message rows verify as expected.json says", () => {
      const [kr] = keyring();
      const got = {};
      for (const m of rows.messages) {
        const msg = { sender: m.sender, recipient: m.recipient ?? undefined, channel: m.channel, body: m.body };
        got[String(m.id)] = kr.verifyMessage(msg, m.hmac ?? undefined);
      }
      assert.deepEqual(got, rows.expected.messages);
    });
  });
}

// --- bad input --------------------------------------------------------------
const ALICE = enc("alice-secret-0123456789abcdef0123456789abcdef");
const aliceKeyring = () => {
  const kr = new Keyring();
  kr.addKey("alice", ALICE);
  return kr;
};
const BAD_UTF8 = [{ tag: "text", val: "a" }, { tag: "text-bytes", val: new Uint8Array([0x61, 0xff, 0xfe]) }];
const HUGE_TEXT = ["x\u{1F600}\n".repeat(1 << 20)]; // 5 MiB of UTF-8
const MALFORMED_MACS = ["", undefined, "not base64 at all", "====",
  "61REQfKaPiBoFJmqKCe2lUS8FflwhV/w9YhluVP1r9E", "\u0000\uffff\u00e9", "A".repeat(1 << 20)];
// Calls the component must refuse with its `error` variant (never a trap):
// [name, call(alice's keyring), the error; a string: its tag only].
const REFUSED = [
  ["invalid UTF-8 text-bytes: sign", (kr) => kr.sign("alice", BAD_UTF8), { tag: "invalid-utf8", val: 1 }],
  ["invalid UTF-8 text-bytes: status", (kr) => kr.status("alice", "x", BAD_UTF8), { tag: "invalid-utf8", val: 1 }],
  ["invalid UTF-8 text-bytes: verify", (kr) => kr.verify("alice", "x", BAD_UTF8), { tag: "invalid-utf8", val: 1 }],
  ["invalid UTF-8 text-bytes: canonical", () => signing.canonical(BAD_UTF8), { tag: "invalid-utf8", val: 1 }],
  ["blob: sign", (kr) => kr.sign("alice", [{ tag: "null" }, { tag: "blob", val: new Uint8Array([1]) }]),
    { tag: "blob", val: 1 }],
  ["unknown agent: sign", (kr) => kr.sign("stranger", fields(["x"])), { tag: "unknown-agent", val: "stranger" }],
  ["31-byte key", (kr) => kr.addKey("bob", new Uint8Array(31)), { tag: "key-too-short", val: { len: 31, min: 32 } }],
  ...["", "../alice", "a/b", "tab\there"].map((agent) =>
    [`agent id ${JSON.stringify(agent)}`, (kr) => kr.addKey(agent, ALICE), "invalid-agent-id"]),
  ["fromKeys with a short key", () => Keyring.fromKeys([{ agent: "alice", secret: ALICE, retired: false },
    { agent: "bob", secret: enc("short"), retired: false }]), "key-too-short"],
];

describe("bad input", () => {
  test("empty list: canonical is []", () =>
    assert.equal(Buffer.from(signing.canonical([])).toString(), "[]"));
  test("empty list: signs as node:crypto does", () =>
    assert.equal(aliceKeyring().sign("alice", []), hmacB64(ALICE, "[]")));
  test("huge list (100k fields): same bytes and MAC as Python's rule", () => {
    const huge = Array.from({ length: 100_000 }, (_, i) => (i % 2 === 0 ? BigInt(i) : `f${i}\u00e9`));
    assert.equal(aliceKeyring().sign("alice", fields(huge)), hmacB64(ALICE, pyDumps(huge)));
    assert.equal(Buffer.from(signing.canonical(fields(huge))).toString(), pyDumps(huge));
  });
  test("huge text (5 MiB): same MAC as Python's rule", () =>
    assert.equal(aliceKeyring().sign("alice", fields(HUGE_TEXT)), hmacB64(ALICE, pyDumps(HUGE_TEXT))));
  test("valid UTF-8 text-bytes encode like text", () =>
    assert.equal(Buffer.from(signing.canonical([{ tag: "text-bytes", val: enc("caf\u00e9") }])).toString(),
      '["caf\\u00e9"]'));
  test("unknown agent: verify false, status unknown-agent", () => {
    const kr = aliceKeyring();
    assert.equal(kr.verify("stranger", "P9oW9Pk2MPvEywI7ec/qxd5SwqWsM148KxpTntkdp+I=", fields(["x"])), false);
    assert.equal(kr.status("stranger", "AAAA", fields(["x"])), "unknown-agent");
  });
  for (const mac of MALFORMED_MACS) {
    const want = mac ? "bad-mac" : "unsigned";
    test(`malformed MAC ${JSON.stringify(mac)?.slice(0, 24)}: status ${want}, verify false`, () => {
      const kr = aliceKeyring();
      assert.equal(kr.status("alice", mac, fields(["alice"])), want);
      assert.equal(kr.verify("alice", mac, fields(["alice"])), false);
    });
  }
  for (const [name, call, want] of REFUSED) {
    test(`refused: ${name}`, () => {
      const e = errorOf(() => call(aliceKeyring()));
      if (typeof want === "string") assert.equal(e?.tag, want);
      else assert.deepEqual(e, want);
    });
  }
  test("instance still usable after bad input", () => {
    // The refusals, malformed MACs and the 5 MiB text above on one keyring.
    const kr = aliceKeyring();
    for (const [name, call] of REFUSED) assert.ok(errorOf(() => call(kr)), name);
    for (const mac of MALFORMED_MACS) {
      kr.status("alice", mac, fields(["alice"]));
      kr.verify("alice", mac, fields(["alice"]));
    }
    kr.sign("alice", fields(HUGE_TEXT));
    assert.equal(kr.sign("alice", []), "YDWwv2koa0aEqaOJPXxspQ4zZj47GmYtZsPNOWd57tw=");
  });
});

// --- rotation and retired keys ----------------------------------------------
describe("rotation and retired keys", () => {
  const k1 = enc("carol-key-1-0123456789abcdef0123456789abcdef");
  const k2 = enc("carol-key-2-0123456789abcdef0123456789abcdef");
  const c = claim(["carol", "t1", 1n, "x"]);
  // alice; carol rotated from k1 to k2 (and a claim signed with k1); dave
  // with a retired key only.
  const rotated = () => {
    const kr = aliceKeyring();
    kr.addKey("carol", k1);
    const old = kr.signClaim(c);
    kr.addKey("carol", k2);
    kr.addRetiredKey("dave", enc("dave-old-0123456789abcdef0123456789abcdef"));
    return [kr, old];
  };
  test("rotation: old key's row is retired-key", () => {
    const [kr, old] = rotated();
    assert.equal(kr.claimStatus(c, old), "retired-key");
    assert.equal(kr.verifyClaim(c, old), true);
  });
  test("rotation: new rows sign with the new key", () =>
    assert.equal(rotated()[0].signClaim(c), hmacB64(k2, pyDumps(["carol", "t1", 1n, "x"]))));
  test("retired-only agent: sign throws no-current-key", () =>
    assert.deepEqual(errorOf(() => rotated()[0].sign("dave", fields(["x"]))),
      { tag: "no-current-key", val: "dave" }));
  test("fingerprint is the documented HMAC label", () =>
    assert.equal(aliceKeyring().fingerprint("alice"),
      createHmac("sha256", ALICE).update("coord key fingerprint v1").digest("hex").slice(0, 16)));
  test("no fingerprint without a current key", () =>
    assert.equal(rotated()[0].fingerprint("dave"), undefined));
  test("agents listed in order", () =>
    assert.deepEqual(rotated()[0].agents(), ["alice", "carol", "dave"]));
  test("removeAgent forgets its keys", () => {
    const [kr, old] = rotated();
    assert.equal(kr.removeAgent("carol"), true);
    assert.equal(kr.claimStatus(c, old), "unknown-agent");
  });
});

// --- signed history (tests/component/history_fixture.py) --------------------
// history.json holds databases written by the extension's write API and
// attacked copies of them: their coord_events rows as stored, and what the
// extension's coord_log and coord_checkpoint_log said of them with the same
// keys this keyring gets. The component must say the same, row for row.
describe("signed history", () => {
  const h = parseJson(readFileSync(join(input("COORD_HISTORY"), "history.json"), "utf8"));
  const kr = () => Keyring.fromKeys(h.keys.map(({ agent, secret, retired }) =>
    ({ agent, secret: enc(secret), retired })));
  const event = (r) => ({ seq: r.seq, prev: r.prev, op: r.op, subject: r.subject, at: r.at,
    agent: r.agent, state: r.state, hmac: r.hmac ?? undefined });
  const checkpoint = (r) => ({ agent: r.agent, origin: r.origin, size: r.size, head: r.head,
    at: r.at, hmac: r.hmac ?? undefined });
  const rows = (report) => report.events.map((c) => [c.seq, c.link, snake(c.status), c.chain]);
  const logRows = (db) => db.log.map((r) => [r.seq, r.link, r.verification, r.chain]);
  const names = Object.keys(h.databases).sort();
  test("five databases, the intact one of 14 events", () => {
    assert.deepEqual(names, ["edited", "gap", "intact", "swapped", "truncated"]);
    assert.equal(h.databases.intact.events.length, 14);
  });
  for (const name of names) {
    const db = h.databases[name];
    const events = db.events.map(event);
    test(`${name}: checkLog reads as coord_log, row for row`, () => {
      const report = signing.checkLog(kr(), events, undefined);
      assert.deepEqual(rows(report), logRows(db));
      assert.equal(report.size, BigInt(db.log.length));
      assert.equal(report.origin, db.log[0].seq === 1n ? db.log[0].link : undefined);
      assert.equal(report.head, db.log.at(-1).link);
      assert.equal(report.intact,
        db.log.every((r) => r.chain === "ok" && r.verification !== "bad_mac"));
      assert.equal(report.intact, name === "intact" || name === "truncated");
    });
    test(`${name}: eventLink and eventStatus of each event`, () => {
      const k = kr();
      assert.deepEqual(events.map((e) => [e.seq, signing.eventLink(e), snake(k.eventStatus(e))]),
        db.log.map((r) => [r.seq, r.link, r.verification]));
    });
    test(`${name}: every suffix, after its position, reads as the whole log`, () => {
      const k = kr();
      const log = logRows(db);
      for (let i = 0; i < events.length; i++) {
        const after = { origin: db.log[0].link, size: db.log[i].seq, head: db.log[i].link };
        const report = signing.checkLog(k, events.slice(i + 1), after);
        assert.deepEqual(rows(report), log.slice(i + 1), `after ${i}`);
        assert.equal(report.size, db.log[i].seq + BigInt(events.length - i - 1));
        assert.equal(report.origin, db.log[0].link);
      }
    });
    test(`${name}: checkpoints read as coord_checkpoint_log`, () => {
      const k = kr();
      assert.equal(db.checkpoints.length, 2);
      for (const r of db.checkpoints) {
        const cp = checkpoint(r);
        assert.equal(snake(k.checkpointStatus(cp)), r.verification);
        assert.equal(signing.checkpointConsistency(cp, events), r.consistency);
        // signed by the extension: the component signs it to the same MAC
        assert.equal(k.signCheckpoint(cp), r.hmac);
      }
    });
  }
  test("the attacks: a gap, a broken chain, a bad MAC, a fork, an ahead", () => {
    const at = (name, seq) => signing.checkLog(kr(), h.databases[name].events.map(event), undefined)
      .events.find((c) => c.seq === seq);
    assert.equal(at("gap", 4n).chain, "gap");
    assert.deepEqual([6n, 7n, 8n].map((s) => at("swapped", s).chain), ["broken", "broken", "broken"]);
    assert.deepEqual([at("edited", 5n).status, at("edited", 6n).chain], ["bad-mac", "broken"]);
    const consistency = (name) => h.databases[name].checkpoints.map((r) =>
      signing.checkpointConsistency(checkpoint(r), h.databases[name].events.map(event)));
    assert.deepEqual(consistency("edited"), ["fork", "consistent"]);
    assert.deepEqual(consistency("truncated"), ["consistent", "ahead"]);
  });
  test("signEvent gives the extension's MAC for every verified event", () => {
    const k = kr();
    const db = h.databases.intact;
    const verified = db.events.filter((_, i) => db.log[i].verification === "verified");
    assert.equal(verified.length, 6);
    for (const r of verified) assert.equal(k.signEvent(event(r)), r.hmac);
    const unsigned = db.events.find((r) => r.agent === "");
    assert.deepEqual(errorOf(() => k.signEvent(event(unsigned))), { tag: "unknown-agent", val: "" });
  });
  test("a checkpoint the component signs is the one the extension would sign", () => {
    // The extension signed alice's at the head; the component, given the
    // same statement, signs the same bytes to the same MAC, and a changed
    // statement does not verify.
    const k = kr();
    const r = h.databases.intact.checkpoints[1];
    const report = signing.checkLog(k, h.databases.intact.events.map(event), undefined);
    const cp = { agent: "alice", origin: report.origin, size: report.size, head: report.head, at: r.at };
    assert.equal(k.signCheckpoint(cp), r.hmac);
    assert.equal(k.checkpointStatus({ ...cp, hmac: r.hmac }), "verified");
    assert.equal(k.checkpointStatus({ ...cp, size: cp.size - 1n, hmac: r.hmac }), "bad-mac");
  });
  test("an empty log", () => {
    const report = signing.checkLog(kr(), [], undefined);
    assert.deepEqual([report.events, report.size, report.origin, report.head, report.intact],
      [[], 0n, undefined, undefined, true]);
  });
});
