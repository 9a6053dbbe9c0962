// The name view's directory check in a real browser (the machine's headless Chromium through playwright-core):
// the /app/ page from dapp/src, a stand-in gateway answering lookups from docs/vectors/transparency.json, and a
// stand-in node RPC whose chain holds a bulletin coin with the vectors' signed root. It shows that WebCrypto's
// SHA-256 and RSA checks run in the page, and that the page says "in the published directory" for an honest answer
// and refuses a lying gateway's. Skipped when Chromium or playwright-core is not there.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const CHROMIUM = process.env.MNS_CHROMIUM || "/usr/bin/chromium";
const here = fileURLToPath(new URL("..", import.meta.url));
let chromium = null;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  chromium = null;
}
const skip = !chromium || !existsSync(CHROMIUM) ? "needs Chromium and playwright-core (npm ci)" : false;

const data = JSON.parse(readFileSync(join(here, "..", "docs", "vectors", "transparency.json"), "utf8"));
const honest = data.answers.find((a) => a.status === "in_directory");
const lying = data.answers.find((a) => a.status === "root_differs");
const forgedProof = data.answers.find((a) => a.status === "proof_invalid");
const KEY = data.verified_signers[0];
const TOKEN = "0x6E1D60258832";
const OWNER = "0x0E914516BF0B";
const ADDRESS = "0x1DF1924BAB4F";
const TIMEOUT = { timeout: 30000 };

let answer = honest; // what the gateway answers for the name now
let gateway;
let node;
let browser;

function listen(handler) {
  return new Promise((resolve) => {
    const server = createServer(handler);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

const base = (server) => `http://127.0.0.1:${server.address().port}`;

function send(response, status, body, type = "application/json") {
  response.writeHead(status, { "Content-Type": type, "Access-Control-Allow-Origin": "*" });
  response.end(typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body));
}

/** The page's files as the gateway serves them at /app/, with the crypto library in the place of SODIUM_JS. */
function page(path, response) {
  const file = path === "/app/" ? "index.html" : path.slice("/app/".length);
  if (file === "sodium.js") {
    const vendor = ["libsodium/dist/modules/libsodium.js", "libsodium-wrappers/dist/modules/libsodium-wrappers.js"];
    return send(response, 200, vendor.map((f) => readFileSync(join(here, "node_modules", f), "utf8")).join(";\n"), "text/javascript");
  }
  if (!/^[a-z-]+\.(js|html|css|png)$/.test(file) || !existsSync(join(here, "src", file))) return send(response, 404, "");
  const types = { js: "text/javascript", html: "text/html", css: "text/css", png: "image/png" };
  let body = readFileSync(join(here, "src", file));
  if (file === "index.html") body = body.toString("utf8").replace("SODIUM_JS", "sodium.js");
  return send(response, 200, body, types[file.split(".").pop()]);
}

function gatewayAnswer(request, response) {
  const url = new URL(request.url, "http://x");
  if (url.pathname.startsWith("/app/")) return page(url.pathname, response);
  if (url.pathname === "/.well-known/mns.json") {
    return send(response, 200, {
      maxima: { publickey: KEY, address: "MxG18HGG@127.0.0.1:9001" },
      entry_points: { tokenid: TOKEN, owner: OWNER },
    });
  }
  if (url.pathname === "/api/v1/names") return send(response, 200, { names: [] });
  if (url.pathname === `/api/v1/names/${answer.name}`) {
    const statement = answer.current.statement;
    return send(response, 200, {
      name: statement.name,
      status: "active",
      owner: statement.owner,
      box_key: statement.box_key,
      payment_address: null,
      gateways: [statement.gateway],
      seq: statement.seq,
      ...answer.current,
      transparency: answer.transparency,
    });
  }
  return send(response, 404, { error: "name_not_found", detail: "No such name." });
}

/** The user's node: its identity, and a chain whose bulletin coin carries the vectors' signed root. */
function nodeAnswer(request, response) {
  let line = "";
  request.on("data", (chunk) => (line += chunk));
  request.on("end", () => {
    const ok = (value) => send(response, 200, { command: line.split(" ")[0], status: true, response: value });
    if (line === "maxima action:info") {
      return ok({ publickey: KEY, p2pidentity: "MxG18HGG@127.0.0.1:9001", contact: "MxG18HGG@127.0.0.1:9001", name: "dana" });
    }
    if (line.startsWith("newscript trackall:true")) return ok({ address: ADDRESS, script: line });
    if (line === `coins address:${ADDRESS} tokenid:${TOKEN}`) {
      const bulletin = { v: 1, seq: 7, issued_at: data.root.cutoff + 60000, entries: [], root: data.signed_root };
      const state = [
        { port: 0, type: 1, data: OWNER },
        { port: 1, type: 1, data: "0x" + Buffer.from(JSON.stringify(bulletin)).toString("hex").toUpperCase() },
        { port: 2, type: 1, data: "7" },
      ];
      return ok([{ coinid: "0x01", address: ADDRESS, tokenid: TOKEN, spent: false, created: "9", state }]);
    }
    return send(response, 200, { command: line.split(" ")[0], status: false, error: "not in this test" });
  });
}

before(async () => {
  if (skip) return;
  gateway = await listen(gatewayAnswer);
  node = await listen(nodeAnswer);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
});

after(async () => {
  if (browser) await browser.close();
  for (const server of [gateway, node]) if (server) server.close();
});

async function lookUp(vector) {
  answer = vector;
  const tab = await browser.newPage();
  const errors = [];
  tab.on("pageerror", (error) => errors.push(error.message));
  await tab.goto(base(gateway) + "/app/");
  await tab.waitForSelector("body[data-ready=true]", TIMEOUT);
  await tab.fill("#rpc-url", base(node));
  await tab.click("#connect");
  await tab.waitForFunction(() => document.getElementById("node-status").textContent.startsWith("Connected"), null, TIMEOUT);
  await tab.click("nav button[data-screen=record]");
  await tab.fill("#lookup-name", vector.name);
  await tab.click("#lookup-go");
  await tab.waitForFunction(() => document.getElementById("lookup-view").dataset.directory, null, TIMEOUT);
  const seen = {
    status: await tab.getAttribute("#lookup-view", "data-directory"),
    view: await tab.textContent("#lookup-view"),
    error: (await tab.isVisible("#error")) ? await tab.textContent("#error") : "",
  };
  await tab.close();
  assert.deepEqual(errors, []);
  return seen;
}

test("the name view shows an honest answer in the published directory", { skip }, async () => {
  const seen = await lookUp(honest);
  assert.equal(seen.status, "in_directory");
  assert.match(seen.view, /in the published directory \(root of 2026-11-26 \d\d:\d\d UTC, signed by 2 gateways\)/);
  assert.match(seen.view, /verified here/);
  assert.equal(seen.error, "");
});

test("the name view refuses a lying gateway's answer and shows no record", { skip }, async () => {
  for (const vector of [lying, forgedProof]) {
    const seen = await lookUp(vector);
    assert.equal(seen.status, vector.status);
    assert.match(seen.error, /^Do not trust this gateway's answer about user\d+: /);
    assert.doesNotMatch(seen.view, /Owner/);
  }
});
