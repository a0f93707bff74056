// Node host for coord's WASI component, transpiled to JS with jco.
//
// usage: node node_host.mjs TRANSPILED_JS VECTORS FIXTURE_ROWS SECRETS_DIR
//
// TRANSPILED_JS is the module `jco transpile` wrote (it imports nothing: the
// component has no imports, so no WASI shim is loaded). FIXTURE_ROWS is the
// JSON that fixture_rows.py dumps from the gptme fixture (Node 20 has no
// SQLite). Prints ok/FAIL lines and `node host: N passed, N failed`.
import { createHmac } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [modulePath, vectorsPath, rowsPath, secretsDir] = process.argv.slice(2);
const { signing } = await import(pathToFileURL(resolve(modulePath)).href);
const { Keyring } = signing;

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

let passed = 0, failed = 0;
function check(name, fn) {
  let ok, detail = "";
  try {
    const r = fn();
    [ok, detail] = Array.isArray(r) ? r : [r, ""];
  } catch (e) {
    ok = false;
    detail = `threw ${e?.constructor?.name}: ${e?.message} ${JSON.stringify(e?.payload ?? null,
      (_, v) => typeof v === "bigint" ? v.toString() : v)}`;
  }
  if (ok) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}: ${detail}`); }
}
// The `error` variant of a call that must fail: jco throws it as
// ComponentError with the variant in `payload`.
function errorOf(fn) {
  try { fn(); } catch (e) {
    if (e?.payload && typeof e.payload.tag === "string") return e.payload;
    throw e;
  }
  return null;
}

const v = parseJson(readFileSync(vectorsPath, "utf8"));
const rows = parseJson(readFileSync(rowsPath, "utf8"));

// --- vectors --------------------------------------------------------------
{
  const keys = [];
  for (const [agent, k] of Object.entries(v.keys)) {
    for (const r of k.retired ?? []) keys.push({ agent, secret: enc(r), retired: true });
    keys.push({ agent, secret: enc(k.current), retired: false });
  }
  const kr = Keyring.fromKeys(keys);
  check("vectors: at least 15 sign cases", () => v.sign.length >= 15);
  for (const c of v.sign) {
    check(`sign vector: ${c.description}`, () => {
      const f = fields(c.fields);
      const bytes = Buffer.from(signing.canonical(f)).toString();
      if (bytes !== c.canonical) return [false, `canonical ${bytes}`];
      const mac = kr.sign(c.agent, f);
      if (mac !== c.mac) return [false, `mac ${mac}`];
      if (kr.status(c.agent, mac, f) !== "verified" || !kr.verify(c.agent, mac, f)) return [false, "no verify"];
      if (c.description.startsWith("claim")) {
        const cl = claim(c.fields);
        if (kr.signClaim(cl) !== c.mac || kr.claimStatus(cl, c.mac) !== "verified") return [false, "claim form"];
      }
      if (c.description.startsWith("message")) {
        const m = message(c.fields);
        if (kr.signMessage(m) !== c.mac || !kr.verifyMessage(m, c.mac)) return [false, "message form"];
      }
      return true;
    });
  }
  for (const c of v.verify) {
    check(`verify vector: ${c.description}`, () => {
      const f = fields(c.fields);
      const mac = c.mac ?? undefined;
      const st = snake(kr.status(c.agent, mac, f));
      const cst = snake(kr.claimStatus(claim(c.fields), mac));
      const ok = kr.verify(c.agent, mac, f);
      const authentic = c.status === "verified" || c.status === "retired_key";
      return [st === c.status && cst === c.status && ok === authentic, `${st} ${cst} ${ok}`];
    });
  }
}

// --- the gptme fixture ----------------------------------------------------
{
  const kr = new Keyring();
  let loaded = 0;
  for (const name of readdirSync(secretsDir).sort()) {
    if (!name.endsWith(".secret")) continue;
    const secret = readFileSync(join(secretsDir, name)).toString("latin1").trim();
    kr.addKey(name.slice(0, -".secret".length), Buffer.from(secret, "latin1"));
    loaded++;
  }
  check("fixture: keys loaded", () => [loaded >= 2, loaded]);
  for (const w of rows.work) {
    check(`fixture work ${JSON.stringify(w.task_id)}`, () => {
      const mac = w.hmac ?? undefined;
      const got = w.claimer === null || w.expires_at === null
        ? kr.verify(w.claimer ?? "", mac, fields([w.claimer, w.task_id, w.epoch, w.expires_at]))
        : kr.verifyClaim(claim([w.claimer, w.task_id, w.epoch, w.expires_at]), mac);
      return [got === rows.expected.work[w.task_id], `verify ${got}`];
    });
  }
  for (const m of rows.messages) {
    check(`fixture message ${m.id}`, () => {
      const msg = { sender: m.sender, recipient: m.recipient ?? undefined, channel: m.channel, body: m.body };
      const got = kr.verifyMessage(msg, m.hmac ?? undefined);
      return [got === rows.expected.messages[String(m.id)], `verify ${got}`];
    });
  }
}

// --- bad input ------------------------------------------------------------
{
  const ALICE = enc("alice-secret-0123456789abcdef0123456789abcdef");
  const kr = new Keyring();
  kr.addKey("alice", ALICE);
  check("empty list: canonical is []", () => Buffer.from(signing.canonical([])).toString() === "[]");
  check("empty list: signs as node:crypto does", () => kr.sign("alice", []) === hmacB64(ALICE, "[]"));
  const huge = Array.from({ length: 100_000 }, (_, i) => (i % 2 === 0 ? BigInt(i) : `f${i}\u00e9`));
  check("huge list (100k fields): same bytes and MAC as Python's rule", () =>
    kr.sign("alice", fields(huge)) === hmacB64(ALICE, pyDumps(huge))
    && Buffer.from(signing.canonical(fields(huge))).toString() === pyDumps(huge));
  const big = ["x\u{1F600}\n".repeat(1 << 20)];
  check("huge text (5 MiB): same MAC as Python's rule", () =>
    kr.sign("alice", fields(big)) === hmacB64(ALICE, pyDumps(big)));
  const bad = [{ tag: "text", val: "a" }, { tag: "text-bytes", val: new Uint8Array([0x61, 0xff, 0xfe]) }];
  for (const [name, fn] of [["sign", () => kr.sign("alice", bad)],
    ["status", () => kr.status("alice", "x", bad)],
    ["verify", () => kr.verify("alice", "x", bad)],
    ["canonical", () => signing.canonical(bad)]]) {
    check(`invalid UTF-8 text-bytes: ${name} throws invalid-utf8(1)`, () => {
      const e = errorOf(fn);
      return [e?.tag === "invalid-utf8" && e.val === 1, JSON.stringify(e)];
    });
  }
  check("valid UTF-8 text-bytes encode like text", () =>
    Buffer.from(signing.canonical([{ tag: "text-bytes", val: enc("caf\u00e9") }])).toString() === '["caf\\u00e9"]');
  check("blob: sign throws blob(1)", () => {
    const e = errorOf(() => kr.sign("alice", [{ tag: "null" }, { tag: "blob", val: new Uint8Array([1]) }]));
    return [e?.tag === "blob" && e.val === 1, JSON.stringify(e)];
  });
  check("unknown agent: sign throws unknown-agent", () => {
    const e = errorOf(() => kr.sign("stranger", fields(["x"])));
    return [e?.tag === "unknown-agent" && e.val === "stranger", JSON.stringify(e)];
  });
  check("unknown agent: verify false, status unknown-agent", () =>
    kr.verify("stranger", "P9oW9Pk2MPvEywI7ec/qxd5SwqWsM148KxpTntkdp+I=", fields(["x"])) === false
    && kr.status("stranger", "AAAA", fields(["x"])) === "unknown-agent");
  for (const mac of ["", undefined, "not base64 at all", "====",
    "61REQfKaPiBoFJmqKCe2lUS8FflwhV/w9YhluVP1r9E", "\u0000\uffff\u00e9", "A".repeat(1 << 20)]) {
    const want = mac ? "bad-mac" : "unsigned";
    check(`malformed MAC ${JSON.stringify(mac)?.slice(0, 24)}: status ${want}, verify false`, () =>
      kr.status("alice", mac, fields(["alice"])) === want
      && kr.verify("alice", mac, fields(["alice"])) === false);
  }
  check("31-byte key throws key-too-short{31,32}", () => {
    const e = errorOf(() => kr.addKey("bob", new Uint8Array(31)));
    return [e?.tag === "key-too-short" && e.val.len === 31 && e.val.min === 32, JSON.stringify(e)];
  });
  for (const agent of ["", "../alice", "a/b", "tab\there"]) {
    check(`agent id ${JSON.stringify(agent)} throws invalid-agent-id`, () =>
      errorOf(() => kr.addKey(agent, ALICE))?.tag === "invalid-agent-id");
  }
  check("fromKeys with a short key throws key-too-short", () =>
    errorOf(() => Keyring.fromKeys([{ agent: "alice", secret: ALICE, retired: false },
      { agent: "bob", secret: enc("short"), retired: false }]))?.tag === "key-too-short");
  const k1 = enc("carol-key-1-0123456789abcdef0123456789abcdef");
  const k2 = enc("carol-key-2-0123456789abcdef0123456789abcdef");
  kr.addKey("carol", k1);
  const c = claim(["carol", "t1", 1n, "x"]);
  const old = kr.signClaim(c);
  kr.addKey("carol", k2);
  check("rotation: old key's row is retired-key", () =>
    kr.claimStatus(c, old) === "retired-key" && kr.verifyClaim(c, old));
  check("rotation: new rows sign with the new key", () =>
    kr.signClaim(c) === hmacB64(k2, pyDumps(["carol", "t1", 1n, "x"])));
  kr.addRetiredKey("dave", enc("dave-old-0123456789abcdef0123456789abcdef"));
  check("retired-only agent: sign throws no-current-key", () => {
    const e = errorOf(() => kr.sign("dave", fields(["x"])));
    return [e?.tag === "no-current-key" && e.val === "dave", JSON.stringify(e)];
  });
  check("fingerprint is the documented HMAC label", () =>
    kr.fingerprint("alice") === createHmac("sha256", ALICE).update("coord key fingerprint v1").digest("hex").slice(0, 16));
  check("no fingerprint without a current key", () => kr.fingerprint("dave") === undefined);
  check("agents listed in order", () => JSON.stringify(kr.agents()) === '["alice","carol","dave"]');
  check("removeAgent forgets its keys", () => kr.removeAgent("carol") && kr.claimStatus(c, old) === "unknown-agent");
  check("instance still usable after bad input", () =>
    kr.sign("alice", []) === "YDWwv2koa0aEqaOJPXxspQ4zZj47GmYtZsPNOWd57tw=");
}

console.log(`node host: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
