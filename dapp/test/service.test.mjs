// The MiniDapp's service.js as a node runs it: a script in a context holding only `MDS` (synchronous callbacks, as
// in the node's JavaScript engine). The node's side is played here by `NodeStandIn`: `maxverify` really verifies
// (SHA256withRSA with node:crypto, answered in the shape of fixture 34), MDS.net answers what a gateway answers
// (only a 200 body, as the node keeps), MDS.sql keeps rows for the one table the service uses.
import assert from "node:assert/strict";
import { createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import vm from "node:vm";
import { latestFromService } from "../src/service-store.js";

const SERVICE = readFileSync(new URL("../src/service.js", import.meta.url), "utf8");
const VECTORS = JSON.parse(readFileSync(new URL("../../docs/vectors/statements.json", import.meta.url), "utf8"));
const BATCHES = JSON.parse(readFileSync(new URL("../../docs/vectors/batches.json", import.meta.url), "utf8"));
const ALICE = VECTORS.vectors[0]; // alice registered at gateway A, with a payment address, signed by her node
const GATEWAY_URL = "http://127.0.0.1:8000";
const GATEWAY_KEY = ALICE.statement.gateway;
const MINIMA_MNS_FIELDS = ["DATA", "DATAHEX", "FOUND", "LOCATION", "NAME", "OWNER", "TRANSFER", "UPDATED"];

const hexText = (hex) => Buffer.from(hex.slice(2), "hex").toString("utf8");
const textHex = (text) => "0x" + Buffer.from(text, "utf8").toString("hex").toUpperCase();

/** A gateway's `GET /api/v1/names/alice` answer for a signed statement (registry's record_representation). */
function record(statement = ALICE.statement, signature = ALICE.signature_hex) {
  return {
    name: statement.name,
    status: "active",
    owner: statement.owner,
    box_key: statement.box_key,
    payment_address: statement.payment_address ?? null,
    gateways: ["MAX#" + GATEWAY_KEY + "#MxG18HGG6FJ038614Y8CW46US6G20810K0070CD00Z83282G60G15973VMZJ@127.0.0.1:9001"],
    seq: statement.seq,
    statement,
    signature,
  };
}

class NodeStandIn {
  constructor({ names = {}, keypairs = { gateway: GATEWAY_URL } } = {}) {
    this.names = names; // name -> the gateway's 200 body; anything else answers 404 (an empty body for the node)
    this.keypairs = keypairs;
    this.rows = [];
    this.replies = [];
    this.commands = [];
    this.urls = [];
    this.logs = [];
    const node = this;
    this.MDS = {
      init(callback) {
        node.callback = callback;
        callback({ event: "inited" });
      },
      log: (text) => node.logs.push(String(text)),
      cmd: (line, callback) => callback(node.command(line)),
      sql: (statement, callback) => {
        const result = node.sql(statement);
        if (callback) callback(result);
      },
      net: {
        GET: (url, callback) => {
          node.urls.push(url);
          const name = decodeURIComponent(url.slice(`${GATEWAY_URL}/api/v1/names/`.length));
          const body = url.startsWith(`${GATEWAY_URL}/api/v1/names/`) ? node.names[name] : undefined;
          callback({ request: "GET", url, status: true, pending: false, response: body ? JSON.stringify(body) : "" });
        },
      },
      keypair: {
        get: (key, callback) => {
          const value = node.keypairs[key];
          callback({ command: "get", key, value, status: value !== undefined, pending: false });
        },
      },
      api: { reply: (dapp, id, text) => node.replies.push({ dapp, id, text }) },
    };
    vm.runInNewContext(SERVICE, { MDS: this.MDS });
  }

  event(event, data) {
    this.callback({ event, data });
  }

  command(line) {
    this.commands.push(line);
    const params = Object.fromEntries(line.split(" ").slice(1).map((part) => part.split(/:(.*)/s).slice(0, 2)));
    if (!line.startsWith("maxverify ")) return { command: line, status: false, error: "Command not found" };
    const key = createPublicKey({ key: Buffer.from(params.publickey.slice(2), "hex"), format: "der", type: "spki" });
    const valid = verify("sha256", Buffer.from(params.data.slice(2), "hex"), key, Buffer.from(params.signature.slice(2), "hex"));
    return { command: "maxverify", params, status: true, pending: false, response: { valid } };
  }

  sql(statement) {
    if (statement.startsWith("CREATE TABLE")) return { status: true };
    const insert = statement.match(/^INSERT INTO mnsevents \(kind, ref, sender, body, received\) VALUES \('([^']*)', '([^']*)', '([^']*)', '([^']*)', (\d+)\)$/);
    if (insert) {
      const [, KIND, REF, SENDER, BODY, RECEIVED] = insert;
      this.rows.push({ KIND, REF, SENDER, BODY, RECEIVED });
      return { status: true };
    }
    const select = statement.match(/^SELECT body FROM mnsevents WHERE kind='([^']*)' AND ref='([^']*)' AND sender(?:='([^']*)'| IN \(([^)]*)\)) ORDER BY received DESC$/);
    if (select) {
      const senders = select[3] !== undefined ? [select[3]] : select[4].split(", ").map((s) => s.slice(1, -1));
      const rows = this.rows.filter((r) => r.KIND === select[1] && r.REF === select[2] && senders.includes(r.SENDER)).reverse();
      return { status: true, count: rows.length, rows: rows.map((r) => ({ BODY: r.BODY })) };
    }
    return { status: false, error: `unexpected SQL: ${statement}` };
  }

  ask(text, id = "42") {
    this.event("MDSAPI", { from: "other dapp", to: "MNS mail", id, request: true, message: text });
    const reply = this.replies.find((r) => r.id === id);
    return reply && { dapp: reply.dapp, answer: JSON.parse(reply.text) };
  }
}

test("a GET from another MiniDapp is answered in the exact shape of Minima's MNS, with the record verified by the node", () => {
  const node = new NodeStandIn({ names: { alice: record() } });
  const { dapp, answer } = node.ask('{"action":"GET","data":"alice"}');
  assert.equal(dapp, "other dapp");
  assert.deepEqual(Object.keys(answer).sort(), MINIMA_MNS_FIELDS);
  const s = ALICE.statement;
  assert.deepEqual(
    [answer.FOUND, answer.LOCATION, answer.OWNER, answer.TRANSFER, answer.NAME, answer.DATAHEX, answer.UPDATED],
    [true, "GATEWAY", s.owner, s.owner, "alice", "0x00", s.seq],
  );
  const data = JSON.parse(answer.DATA);
  assert.equal(data.address, s.payment_address); // where Minima's MNS keeps a Minima address
  assert.equal(data.box_key, s.box_key);
  assert.equal(data.gateway, s.gateway);
  assert.match(data.maxima, /^MAX#0x/);
  assert.deepEqual([data.statement, data.signature], [s, ALICE.signature_hex]); // anyone can verify it again
  assert.equal(node.commands.length, 1);
  assert.ok(node.commands[0].startsWith(`maxverify data:${ALICE.canonical_hex} publickey:${s.owner} signature:`));
});

test("the owner's signed data record is answered in DATA as record, next to what the gateway keeps", () => {
  const carol = VECTORS.vectors.find((v) => v.statement.op === "register" && v.statement.data);
  const node = new NodeStandIn({ names: { [carol.statement.name]: record(carol.statement, carol.signature_hex) } });
  const { answer } = node.ask(JSON.stringify({ action: "GET", data: carol.statement.name }));
  assert.equal(answer.FOUND, true);
  assert.deepEqual(JSON.parse(answer.DATA).record, carol.statement.data);
  assert.equal(JSON.parse(node.ask('{"action":"GET","data":"alice"}', "43")?.answer?.DATA ?? "{}").record, undefined);
});

test("a record whose signature does not verify is answered as not found", () => {
  const tampered = { ...ALICE.statement, box_key: "0x" + "11".repeat(32) };
  const node = new NodeStandIn({ names: { alice: record(tampered) } });
  assert.deepEqual(node.ask('{"action":"GET","data":"alice"}').answer, { FOUND: false, NAME: "alice" });
  assert.match(node.logs.join("\n"), /does not verify/);
});

test("an unknown name, a blank one and a service without a gateway answer FOUND false with the name", () => {
  const node = new NodeStandIn({ names: { alice: record() } });
  assert.deepEqual(node.ask('{"action":"GET","data":"nobody"}', "1").answer, { FOUND: false, NAME: "nobody" });
  assert.deepEqual(node.ask('{"action":"GET","data":"  "}', "2").answer, { FOUND: false, NAME: "" });
  const lost = new NodeStandIn({ names: { alice: record() }, keypairs: {} });
  assert.deepEqual(lost.ask('{"action":"GET","data":"alice"}').answer, { FOUND: false, NAME: "alice" });
  assert.deepEqual(lost.urls, []);
});

test("a name typed in capitals is looked up in its normal form", () => {
  const node = new NodeStandIn({ names: { alice: record() } });
  assert.equal(node.ask('{"action":"GET","data":"Alice"}').answer.NAME, "alice");
  assert.deepEqual(node.urls, [`${GATEWAY_URL}/api/v1/names/alice`]);
});

test("anything but a GET is logged and not answered, as Minima's MNS does", () => {
  const node = new NodeStandIn({ names: { alice: record() } });
  assert.equal(node.ask('{"action":"SET","data":"alice"}'), undefined);
  assert.equal(node.ask("not json", "7"), undefined);
  assert.deepEqual(node.urls, []);
});

test("receipts and verdicts reaching the node over Maxima are kept for the page, with who sent them", async () => {
  const node = new NodeStandIn();
  const maxima = (from, message, application = "mns") =>
    node.event("MAXIMA", { from, to: "0x30", application, data: textHex(JSON.stringify(message)), msgid: "0x01" });
  const stored = { v: 1, type: "receipt", id: "k3Jd8_x-Qm2VbN7aL0pRtYw1", status: "stored", message_id: "Zk1nR8qW2xTb0pLe" };
  maxima(GATEWAY_KEY, stored);
  maxima(GATEWAY_KEY, { v: 1, type: "handshake-result", challenge: "fn51u4icL2jhcQcsF-TYMQ", status: "verified" });
  maxima("0x30819F0BAD", { ...stored, status: "refused", reason: "blocked" }); // not the gateway: kept, never trusted
  maxima(GATEWAY_KEY, { v: 1, type: "forwarded", message_id: "x" }); // not something the page waits for
  maxima(GATEWAY_KEY, { v: 1, type: "receipt", id: "x' OR '1'='1", status: "stored" }); // not an id
  maxima(GATEWAY_KEY, stored, "chat");
  assert.deepEqual(node.rows.map((r) => [r.KIND, r.REF]), [
    ["receipt", stored.id],
    ["handshake-result", "fn51u4icL2jhcQcsF-TYMQ"],
    ["receipt", stored.id],
  ]);
  assert.deepEqual(JSON.parse(hexText(node.rows[0].BODY)), stored);
  const page = { sql: async (statement) => node.sql(statement) }; // the page asks the same node
  assert.deepEqual(await latestFromService(page, "receipt", stored.id, GATEWAY_KEY), stored);
  assert.equal((await latestFromService(page, "handshake-result", "fn51u4icL2jhcQcsF-TYMQ", GATEWAY_KEY)).status, "verified");
  assert.equal(await latestFromService(page, "receipt", stored.id, "0x30819F0ABC"), null);
  assert.equal(await latestFromService(page, "receipt", "x' OR '1'='1", GATEWAY_KEY), null);
  // A gateway with a pool of nodes: its receipts may come from any of their keys.
  assert.deepEqual(await latestFromService(page, "receipt", stored.id, ["0x30819F0ABC", GATEWAY_KEY]), stored);
  assert.equal(await latestFromService(page, "receipt", stored.id, ["0x30819F0ABC", "0x30819F0DEF"]), null);
});

test("the items of a batch of the gateway's replies are kept one by one, as if each had come alone", () => {
  const node = new NodeStandIn();
  const mixed = BATCHES.vectors.find((v) => v.name === "a receipt, a verdict and a forwarded message");
  node.event("MAXIMA", { from: GATEWAY_KEY, to: "0x30", application: "mns", data: mixed.data_hex, msgid: "0x02" });
  const items = mixed.items.map((item) => JSON.parse(item));
  assert.deepEqual(node.rows.map((r) => [r.KIND, r.REF]), [
    ["receipt", items[0].id],
    ["handshake-result", items[1].challenge],
  ]); // the forwarded message is not one the page waits for
  assert.deepEqual(JSON.parse(hexText(node.rows[0].BODY)), items[0]);
  const tooMany = { v: 1, type: "batch", messages: Array(501).fill(items[0]) };
  node.event("MAXIMA", { from: GATEWAY_KEY, to: "0x30", application: "mns", data: textHex(JSON.stringify(tooMany)), msgid: "0x03" });
  assert.equal(node.rows.length, 2);
});
