// The MiniDapp's MDS client (src/mds.js) and the node transport over it (NodeMDS), against the exchanges of a
// real node's MDS (fixtures 195, 196, 198, 199 in docs/vectors/maxima/): a local HTTP server answers each request with the body
// the real node gave to the same request, so what the client sends is checked byte for byte.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { MDS } from "../src/mds-client.js";
import { NodeMDS, pendingWords } from "../src/node.js";

const FIXTURES = new URL("../../docs/vectors/maxima/", import.meta.url); // copies of the shared fixtures
const fixture = (name) => JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8"));

/** [path with query, body] -> the real node's answer body, from the raw HTTPS exchanges of a fixture. */
function exchanges(...names) {
  const table = new Map();
  for (const name of names) {
    for (const exchange of Object.values(fixture(name).exchanges)) {
      const request = exchange.raw_request;
      const path = request.split(" ")[1];
      const body = request.slice(request.indexOf("\r\n\r\n") + 4);
      const raw = exchange.raw_response_bytes_as_text;
      table.set(`${path}\n${body}`, raw.slice(raw.indexOf("\r\n\r\n") + 4));
    }
  }
  return table;
}

const SESSION = fixture("195-mds-command-endpoint-raw-https-nodeC.json").exchanges.cmd_block.raw_request.match(/uid=(0x[0-9A-F]+)/)[1];
const replies = exchanges(
  "195-mds-command-endpoint-raw-https-nodeC.json",
  "196-mds-cmd-read-mode-pending-raw-https-nodeC.json",
  "198-mds-megapoll-raw-https-nodeC.json",
  "199-mds-poll-events-raw-https-nodeC.json",
);
const seen = [];
let server;
let base;
const extra = new Map(); // answers a test adds for requests no fixture has

before(async () => {
  server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      seen.push({ method: request.method, url: request.url, body });
      const key = `${request.url}\n${body}`;
      let answer = replies.get(key) ?? extra.get(key);
      if (answer === undefined && request.url.startsWith("/mdscommand_/api?")) answer = '{"status":true,"pending":false}';
      if (answer === undefined) {
        response.writeHead(500).end(); // as MDS answers what it cannot run
        return;
      }
      response.writeHead(200, { "Content-Type": "text/plain" }).end(answer);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

test("a command goes as the real MiniDapp sends it and multi-commands come back as an array", async () => {
  const mds = new MDS({ sessionid: SESSION, base });
  const block = await mds.cmd("block");
  assert.equal(block.response.block, "196");
  const both = await mds.cmd("keys;getaddress");
  assert.ok(Array.isArray(both));
  assert.deepEqual(seen.at(-1), { method: "POST", url: `/mdscommand_/cmd?uid=${SESSION}`, body: "keys%3Bgetaddress" });
});

test("the event poll starts from the node's series and hands every event on", async () => {
  const mds = new MDS({ sessionid: SESSION, base });
  await mds.pollOnce(); // series 0: the node answers its own series and counter
  assert.equal(mds.series, "0x3EF8D9E0DA77F3046E52B04421CF397BC65E7B14D183B9580D66F80E333E2228");
  mds.counter = 29; // as the fixture asked again from 29
  const events = [];
  mds.listeners.add((event, data) => events.push([event, data]));
  await mds.pollOnce();
  assert.equal(seen.at(-1).body, `series=${mds.series}&counter=29`); // not URL-encoded, as the fixture
  assert.deepEqual(events[0], [
    "MDS_PENDING",
    { uid: "0x253F62B48F4BD69E72D96AC7DC6C9845", accept: false, status: false, result: {} },
  ]);
  assert.ok(events.some(([event]) => event === "MDS_TIMER_10SECONDS"));
  assert.equal(mds.counter, 33);
});

test("a pending command in READ mode says what to accept and gives the result once the user accepts", async () => {
  const mds = new MDS({ sessionid: SESSION, base });
  mds.start = () => {}; // events are handed over by the test below, not polled
  const shown = [];
  const node = new NodeMDS({ mds, onPending: (text) => shown.push(text) });
  const line = "sign publickey:0xF4491653C103ACC5640B9AB61C4C1279ABC4B8A3766FB795D8738B89472C1FCF data:0x00";
  const answer = node.command(line);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(shown[0], pendingWords(line));
  assert.match(shown[0], /pending actions and accept it/);
  const signed = { command: line, status: true, pending: false, response: "0xABCD" };
  mds.dispatch({ event: "MDS_PENDING", data: { uid: "0xB37EEC776F4634800B533086B0AA55C2", accept: true, status: true, result: signed } });
  assert.equal(await answer, "0xABCD");
  assert.deepEqual(shown, [pendingWords(line), null]);
});

test("a pending command the user denies is refused in words", async () => {
  const mds = new MDS({ sessionid: SESSION, base });
  mds.start = () => {};
  const node = new NodeMDS({ mds });
  const answer = node.command("send amount:0.01 address:0xFFEEDDFFEEDDFFEEDD");
  await new Promise((resolve) => setTimeout(resolve, 100));
  mds.dispatch({ event: "MDS_PENDING", data: { uid: "0x253F62B48F4BD69E72D96AC7DC6C9845", accept: false, status: false, result: {} } });
  await assert.rejects(answer, { code: "pending_denied" });
});

test("an MDS that does not know the session is said in words", async () => {
  const mds = new MDS({ sessionid: "0x00", base });
  mds.start = () => {};
  const node = new NodeMDS({ mds });
  await assert.rejects(node.command("block"), { code: "node_unreachable" });
});

test("MDS.net POSTs go as url&data and a URL with & in it is refused before it is sent", async () => {
  const mds = new MDS({ sessionid: SESSION, base });
  const url = "https://gw.example/api/v1/relay";
  extra.set(`/mdscommand_/netpost?uid=${SESSION}\n${encodeURIComponent(`${url}&{"a":1}`)}`, '{"status":true,"response":"{}"}');
  assert.deepEqual(await mds.netPost(url, '{"a":1}'), { status: true, response: "{}" });
  assert.throws(() => mds.netPost("https://gw.example/x?a=1&b=2", "{}"), /cannot contain '&'/);
});

test("an API call to another MiniDapp is answered by its MDSAPI response and nothing else sees it", async () => {
  const mds = new MDS({ sessionid: SESSION, base });
  mds.start = () => {};
  const others = [];
  mds.listeners.add((event) => others.push(event));
  const asked = mds.apiCall("MNS mail", '{"action":"GET","data":"alice"}');
  await new Promise((resolve) => setTimeout(resolve, 100));
  const sent = seen.at(-1);
  assert.equal(sent.url, `/mdscommand_/api?uid=${SESSION}`);
  const [dapp, kind, id, text] = decodeURIComponent(sent.body).split("&");
  assert.deepEqual([dapp, kind, text], ["MNS mail", "request", '{"action":"GET","data":"alice"}']);
  mds.dispatch({ event: "MDSAPI", data: { from: "MNS mail", to: "x", id, request: false, status: true, message: '{"FOUND":false}' } });
  assert.deepEqual(await asked, { status: true, data: '{"FOUND":false}' });
  assert.deepEqual(others, []);
});
