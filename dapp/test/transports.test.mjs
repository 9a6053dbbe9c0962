// The gateway behind its two transports: the page's fetch (a local HTTP server plays the gateway) and the user's
// node (MDS.net to the gateway's relay; the node's side answers as Minima's NETcommand does: the body of a 200, else
// status:false with the node's error). And the gateway chosen from the entry points the node reads on chain.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { apiBase, BULLETIN_SCRIPT, chooseGateway, newestBulletin } from "../src/entrypoints.js";
import { FetchTransport, Gateway, MdsNetTransport } from "../src/gateway.js";

let server;
let base;
const heard = [];

before(async () => {
  server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      heard.push({ method: request.method, url: request.url, auth: request.headers.authorization, body });
      if (request.url === "/api/v1/names/alice") {
        response.writeHead(200, { "Content-Type": "application/json" }).end('{"name":"alice"}');
      } else if (request.url === "/api/v1/session") {
        response.writeHead(204).end();
      } else {
        response.writeHead(404, { "Content-Type": "application/json" }).end('{"error":"name_not_found","detail":"x"}');
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

test("the page's transport reads answers, refusals in words and 204s", async () => {
  const gateway = new Gateway(new FetchTransport(base));
  assert.deepEqual(await gateway.name("alice"), { name: "alice" });
  await assert.rejects(gateway.name("bob"), { code: "name_not_found", status: 404, message: "Nobody holds this name." });
  assert.equal(await gateway.request("DELETE", "/api/v1/session", { auth: "MNS-Session t" }), null);
  assert.equal(heard.at(-1).auth, "MNS-Session t");
});

/** The node's MDS.net POST as Minima's NETcommand answers it: a 200's body, else status:false with its error. */
function nodeNet(answer) {
  const sent = [];
  return {
    sent,
    async netPost(url, data) {
      sent.push({ url, data: JSON.parse(data) });
      const { status, body } = answer(JSON.parse(data));
      if (status === 0) return { status: false, error: "java.net.ConnectException: Connection refused" };
      return { request: "POST", url, data, status: true, pending: false, response: JSON.stringify({ status, body }) };
    },
  };
}

test("the MiniDapp's transport sends every request, headers included, as one POST to the gateway's relay", async () => {
  const node = nodeNet((request) =>
    request.path === "/api/v1/names/alice"
      ? { status: 200, body: { name: "alice" } }
      : request.method === "DELETE"
        ? { status: 204, body: null }
        : request.method === "POST"
          ? { status: 201, body: { name: "alice", status: "pending" } }
          : { status: 404, body: { error: "name_not_found", detail: "x" } },
  );
  const gateway = new Gateway(new MdsNetTransport(node, "https://gw.example/"));
  assert.deepEqual(await gateway.name("alice"), { name: "alice" });
  await assert.rejects(gateway.name("bob"), { code: "name_not_found", status: 404 });
  assert.equal(await gateway.owner("DELETE", "alice", "/messages/m1", "tok", undefined), null);
  assert.deepEqual(node.sent.at(-1), {
    url: "https://gw.example/api/v1/relay",
    data: { method: "DELETE", path: "/api/v1/mailboxes/alice/messages/m1", authorization: "MNS-Session tok" },
  });
  assert.deepEqual(await gateway.register({ statement: {} }), { name: "alice", status: "pending" });
  assert.deepEqual(node.sent.at(-1).data, { method: "POST", path: "/api/v1/mailboxes", json: { statement: {} } });
});

test("a gateway the node cannot reach is said in words with the node's reason", async () => {
  const gateway = new Gateway(new MdsNetTransport(nodeNet(() => ({ status: 0 })), "https://gw.example"));
  await assert.rejects(gateway.wellKnown(), (error) => {
    assert.equal(error.code, "gateway_unreachable");
    assert.match(error.message, /Connection refused/);
    return true;
  });
});

// ------------------------------------------------------------------------------------------ entry points

const OWNER = "0x0E914516BF0B";
const TOKEN = "0x6E1D60258832";
const ADDRESS = "0x1DF1924BAB4F";
const KEY = "0x30819F300D06092A864886F70D010101050003818D0030818902818100" + "AB".repeat(128) + "0203010001";
const entry = (url) => ({ api_url: url, identity_key: KEY, maxima_address: `MAX#${KEY}#MxG18HGG@127.0.0.1:9001` });
const hex = (value) => "0x" + Buffer.from(JSON.stringify(value)).toString("hex").toUpperCase();

function coin(list, { owner = OWNER, seq = list.seq, state = "array", ...rest } = {}) {
  const ports = { 0: owner, 1: hex(list), 2: String(seq) };
  return {
    coinid: "0x01",
    address: ADDRESS,
    tokenid: TOKEN,
    created: "27",
    spent: false,
    state: state === "array" ? Object.entries(ports).map(([port, data]) => ({ port: Number(port), type: 1, data })) : ports,
    ...rest,
  };
}

test("the newest acceptable bulletin wins and a coin that is not the publisher's is ignored", () => {
  const config = { address: ADDRESS, tokenid: TOKEN, owner: OWNER };
  const two = { v: 1, seq: 2, issued_at: 1, entries: [entry("https://b.example/api/v1/")] };
  const three = { v: 1, seq: 3, issued_at: 2, entries: [entry("https://c.example")] };
  const forged = { v: 1, seq: 9, issued_at: 3, entries: [entry("https://evil.example")] };
  const coins = [coin(two, { state: "simple" }), coin(three), coin(forged, { owner: "0xBAD" }), coin({ ...three, seq: 4 }, { seq: 3 })];
  assert.deepEqual(newestBulletin(coins, config), { seq: 3, entries: [entry("https://c.example")], root: null });
  assert.equal(newestBulletin(coins, config, 4), null);
  assert.equal(apiBase("https://b.example/api/v1/"), "https://b.example");
});

test("the gateway is picked from the list the user's node reads on chain", async () => {
  const lines = [];
  const list = { v: 1, seq: 5, issued_at: 1, entries: [entry("https://a.example/api/v1/"), entry("https://b.example/api/v1/")] };
  const node = {
    async command(line) {
      lines.push(line);
      return line.startsWith("newscript") ? { address: ADDRESS } : [coin(list)];
    },
  };
  const chosen = await chooseGateway(node, { tokenid: TOKEN, owner: OWNER }, { random: () => 0.99 });
  assert.deepEqual([chosen.base, chosen.seq], ["https://b.example", 5]);
  assert.deepEqual(lines, [`newscript trackall:true script:"${BULLETIN_SCRIPT}"`, `coins address:${ADDRESS} tokenid:${TOKEN}`]);
  const empty = { async command(line) { return line.startsWith("newscript") ? { address: ADDRESS } : []; } };
  await assert.rejects(chooseGateway(empty, { tokenid: TOKEN, owner: OWNER }), { code: "no_entry_points" });
});
