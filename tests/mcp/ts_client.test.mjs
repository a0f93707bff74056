// coord mcp driven by the official MCP TypeScript SDK
// (@modelcontextprotocol/sdk, pinned by package-lock.json): the same server
// the Python tests drive, from a second real client. Run with node --test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const here = dirname(fileURLToPath(import.meta.url));
const COORD = process.env.COORD_BIN || resolve(here, "../../crates/coord-cli/target/release/coord");

function setup() {
  const root = mkdtempSync(join(tmpdir(), "coord-mcp-ts-"));
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("COORDINATION_") && !["BOB_WORKSPACE", "AGENT_WORKSPACE", "WORKSPACE"].includes(k)) env[k] = v;
  }
  env.COORDINATION_SECRETS_DIR = join(root, "keys");
  const db = join(root, "coord.db");
  const coord = (...args) => execFileSync(COORD, ["--db", db, ...args], { env, encoding: "utf8" });
  coord("init");
  coord("keygen", "alice");
  coord("keygen", "bob");
  return { root, db, env, coord, done: () => rmSync(root, { recursive: true, force: true }) };
}

async function connect(e, agent) {
  const transport = new StdioClientTransport({
    command: COORD,
    args: ["--db", e.db, "--as", agent, "mcp"],
    env: e.env,
    stderr: "pipe",
  });
  const client = new Client({ name: "coord-ts-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

async function call(c, name, args = {}) {
  const r = await c.callTool({ name, arguments: args });
  const text = r.content.map((x) => x.text).join("\n");
  assert.ok(!r.isError, `${name} ${JSON.stringify(args)}: ${text}`);
  return [r.structuredContent, text];
}

async function refused(c, name, args) {
  try {
    const r = await c.callTool({ name, arguments: args });
    assert.equal(r.isError, true, JSON.stringify(r));
    return r.content.map((x) => x.text).join("\n");
  } catch (err) {
    return String(err.message);
  }
}

test("initialize, list tools, call every tool", async () => {
  const e = setup();
  const c = await connect(e, "alice");
  try {
    assert.equal(c.getServerVersion().name, "coord");
    const { tools } = await c.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(),
      ["abandon", "audit", "claim", "complete", "inbox", "list", "renew", "send", "status", "submit", "whoami"]);
    for (const t of tools) {
      assert.equal(t.inputSchema.additionalProperties, false, t.name);
      for (const p of ["claimer", "sender", "agent"]) assert.ok(!(p in (t.inputSchema.properties || {})), t.name);
      assert.ok(t.outputSchema, t.name);
    }
    let [r] = await call(c, "whoami");
    assert.equal(r.agent, "alice");
    [r] = await call(c, "submit", { task_id: "ts:1" });
    assert.equal(r.outcome, "submitted");
    [r] = await call(c, "claim", { task_id: "ts:1", ttl_minutes: 2 });
    assert.deepEqual([r.outcome, r.epoch, r.signed], ["granted", 1, true]);
    [r] = await call(c, "renew", { task_id: "ts:1", ttl_minutes: 20 });
    assert.equal(r.outcome, "renewed");
    [r] = await call(c, "complete", { task_id: "ts:1", result: "done", epoch: 1 });
    assert.equal(r.outcome, "completed");
    [r] = await call(c, "claim", { task_id: "ts:2" });
    [r] = await call(c, "abandon", { task_id: "ts:2" });
    assert.equal(r.outcome, "abandoned");
    [r] = await call(c, "list", { filter: "available" });
    assert.deepEqual(r.tasks.map((t) => [t.task_id, t.state]), [["ts:2", "abandoned"]]);
    [r] = await call(c, "list", { filter: "mine" });
    assert.deepEqual(r.tasks.map((t) => [t.task_id, t.verification]), [["ts:1", "verified"]]);
    [r] = await call(c, "send", { body: "hello all", broadcast: true, channel: "ops" });
    assert.equal(r.outcome, "sent");
    let text;
    [r, text] = await call(c, "inbox", { channel: "ops" });
    assert.deepEqual(r.messages.map((m) => [m.body, m.verification]), [["hello all", "verified"]]);
    assert.match(text, /<<<coord-data-[0-9a-f]{32} message id=1 from="alice"/);
    [r] = await call(c, "status");
    assert.equal(r.key.can_sign, true);
    [r] = await call(c, "audit", { strict: true });
    assert.equal(r.ok, true);
    const res = await c.readResource({ uri: "coord://task/ts%3A1" });
    assert.match(res.contents[0].text, /"verification": "verified"/);
    const msg = await c.readResource({ uri: "coord://message/1" });
    assert.match(msg.contents[0].text, /"body": "hello all"/);
    const secret = readFileSync(join(e.env.COORDINATION_SECRETS_DIR, "alice.secret"), "utf8").trim();
    assert.ok(!JSON.stringify(r).includes(secret));
  } finally {
    await c.close();
    e.done();
  }
});

test("two agents race for the same tasks: one winner each", async () => {
  const e = setup();
  const [a, b] = await Promise.all([connect(e, "alice"), connect(e, "bob")]);
  try {
    const tasks = Array.from({ length: 10 }, (_, i) => `ts-race:${i}`);
    const claimAll = async (c, order) => {
      const out = {};
      for (const t of order) out[t] = (await call(c, "claim", { task_id: t }))[0];
      return out;
    };
    const [ra, rb] = await Promise.all([claimAll(a, tasks), claimAll(b, [...tasks].reverse())]);
    const wins = { alice: 0, bob: 0 };
    for (const t of tasks) {
      assert.deepEqual([ra[t].outcome, rb[t].outcome].sort(), ["denied", "granted"], t);
      const [w, l] = ra[t].outcome === "granted" ? [ra[t], rb[t]] : [rb[t], ra[t]];
      assert.equal(l.holder, w.agent);
      wins[w.agent] += 1;
    }
    console.log(`ts race over ${tasks.length} tasks: alice won ${wins.alice}, bob won ${wins.bob}`);
  } finally {
    await Promise.all([a.close(), b.close()]);
    e.done();
  }
});

test("a message from alice reads verified to bob; a forged one is marked", async () => {
  const e = setup();
  const a = await connect(e, "alice");
  await call(a, "send", { body: "from alice", to: "bob" });
  await a.close();
  execFileSync("/usr/bin/sqlite3", [e.db,
    "INSERT INTO messages (sender, recipient, channel, body, hmac) VALUES ('alice', 'bob', 'general', 'forged', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')"]);
  const b = await connect(e, "bob");
  try {
    const [r, text] = await call(b, "inbox");
    assert.deepEqual(r.messages.map((m) => [m.sender, m.body, m.verification]),
      [["alice", "from alice", "verified"], ["alice", "forged", "bad_mac"]]);
    assert.match(text, /verification=bad_mac UNTRUSTED: not verified/);
  } finally {
    await b.close();
    e.done();
  }
});

test("bad input: refused, nothing written, server alive", async () => {
  const e = setup();
  const c = await connect(e, "alice");
  try {
    const before = e.coord("--json", "list") + e.coord("--json", "inbox", "--all");
    assert.match(await refused(c, "claim", { task_id: "x", claimer: "bob" }), /claimer/);
    assert.match(await refused(c, "send", { body: "x", to: "bob", sender: "bob" }), /sender/);
    assert.match(await refused(c, "nope", {}), /not found/);
    assert.match(await refused(c, "claim", {}), /task_id/);
    assert.match(await refused(c, "send", { body: "z".repeat(200000), to: "bob" }), /at most 65536/);
    assert.match(await refused(c, "claim", { task_id: "a\u0000b" }), /task_id/);
    assert.equal(e.coord("--json", "list") + e.coord("--json", "inbox", "--all"), before);
    const [r] = await call(c, "whoami");
    assert.equal(r.agent, "alice");
  } finally {
    await c.close();
    e.done();
  }
});

function freePort() {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

test("streamable HTTP", async () => {
  const e = setup();
  const port = await freePort();
  const server = spawn(COORD, ["--db", e.db, "--as", "bob", "mcp", "--http", `127.0.0.1:${port}`],
    { env: e.env, stdio: ["ignore", "ignore", "pipe"] });
  await new Promise((ok, fail) => {
    server.stderr.on("data", (d) => { if (String(d).includes("streamable HTTP")) ok(); });
    server.on("exit", (code) => fail(new Error(`server exited ${code}`)));
  });
  const c = new Client({ name: "coord-ts-http", version: "1.0.0" });
  try {
    await c.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
    const [r] = await call(c, "claim", { task_id: "http:1" });
    assert.deepEqual([r.outcome, r.agent], ["granted", "bob"]);
  } finally {
    await c.close();
    server.kill();
    e.done();
  }
});
