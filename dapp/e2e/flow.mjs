// The browser end-to-end flow, driven by mns_site/tests/test_dapp_e2e.py: `node e2e/flow.mjs CONFIG.json`.
// Headless Chromium (the machine's, through playwright-core) opens the Dapp at the gateway, sets up with the
// user's node and an imported box key, registers a name, reads a message the `mns` CLI sent (the CLI command
// is run from here at the right moment), replies, looks at the settings, forwards and deletes. Every request the
// page makes is written to CONFIG.requests so the test can check that no plaintext or key left the browser.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const requests = [];
const consoleLines = [];
const steps = [];
mkdirSync(config.screenshots, { recursive: true });

const context = await chromium.launchPersistentContext(config.userDataDir, {
  executablePath: config.chromium,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  acceptDownloads: true,
});
context.on("request", (request) => {
  requests.push({
    method: request.method(),
    url: request.url(),
    headers: request.headers(),
    body: request.postData() || "",
  });
});
const page = context.pages()[0] || (await context.newPage());
page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));

let shot = 0;
async function step(name, work) {
  const started = Date.now();
  try {
    await work();
  } catch (error) {
    const problem = await page.locator("#error").textContent().catch(() => "");
    await page.screenshot({ path: join(config.screenshots, `failed-${name}.png`), fullPage: true });
    throw new Error(`step ${name}: ${error.message}\npage error box: ${problem}\nconsole:\n${consoleLines.join("\n")}`);
  }
  shot += 1;
  await page.screenshot({ path: join(config.screenshots, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  steps.push({ name, ms: Date.now() - started });
}

const T = { timeout: 60000 };
let exitCode = 0;
const result = {};
try {
  await step("node-with-password", async () => {
    // A node with an RPC password: the browser's CORS preflight gets the node's bare 401, so the page says why.
    await page.goto(config.url + "/app/");
    await page.waitForSelector("body[data-ready=true]", T);
    await page.fill("#rpc-url", config.passwordNode.url);
    await page.fill("#rpc-password", config.passwordNode.password);
    await page.click("#connect");
    await page.waitForSelector("#error:not([hidden])", T);
    result.passwordNode = await page.textContent("#error");
  });

  await step("setup", async () => {
    await page.fill("#rpc-password", "");
    await page.fill("#rpc-url", config.rpcUrl);
    await page.click("#connect");
    await page.waitForFunction(() => document.querySelector("#node-status").textContent.startsWith("Connected"), null, T);
    await page.fill("#new-passphrase", config.passphrase);
    await page.fill("#import-hex", config.boxPrivateHex);
    await page.click("#import-key");
    await page.waitForSelector("#key-open:not([hidden])", T);
    result.boxPublic = await page.textContent("#box-public");
  });

  await step("exported-key-file", async () => {
    const [download] = await Promise.all([page.waitForEvent("download", T), page.click("#export-key")]);
    result.keyFile = JSON.parse(readFileSync(await download.path(), "utf8"));
  });

  await step("registered", async () => {
    await page.click("nav button[data-screen=register]");
    await page.fill("#reg-name", config.name);
    await page.click("#reg-go");
    await page.waitForFunction(() => document.querySelector("#notice").textContent.startsWith("Registered"), null, T);
    result.progress = await page.locator("#reg-progress li").allTextContents();
  });

  execFileSync(config.send.argv[0], config.send.argv.slice(1), {
    input: config.send.text,
    env: config.send.env,
    cwd: config.send.cwd,
    stdio: ["pipe", "pipe", "inherit"],
    timeout: 120000,
  });

  await step("inbox", async () => {
    await page.click("nav button[data-screen=inbox]");
    await page.waitForSelector("#inbox-list tbody tr", T);
  });

  await step("read", async () => {
    await page.click("#inbox-list tbody tr button");
    await page.waitForSelector("#letter:not([hidden])", T);
    result.read = {
      from: await page.textContent("#letter-from"),
      verified: await page.textContent("#letter-verified"),
      subject: await page.textContent("#letter-subject"),
      body: await page.textContent("#letter-body"),
    };
  });

  await step("replied", async () => {
    await page.click("#letter-reply");
    await page.fill("#body", config.replyText);
    await page.click("#send");
    await page.waitForSelector("#receipt:not([hidden])", T);
    result.receiptSent = await page.textContent("#receipt");
    await page.waitForSelector("#receipt[data-status]", T); // the gateway's receipt, polled by the page
    result.receipt = await page.textContent("#receipt");
    result.receiptStatus = await page.getAttribute("#receipt", "data-status");
  });

  await step("settings", async () => {
    await page.click("nav button[data-screen=settings]"); // shown at once, without a "Load" click
    await page.waitForSelector("#quota dd", T);
    result.quota = await page.locator("#quota").textContent();
  });

  await step("deleted", async () => {
    await page.click("nav button[data-screen=inbox]");
    await page.waitForSelector("#inbox-list tbody tr", T);
    await page.click("#inbox-list tbody tr button");
    await page.waitForSelector("#letter:not([hidden])", T);
    await page.click("#letter-delete");
    await page.waitForFunction(() => document.querySelector("#notice").textContent === "Deleted.", null, T);
    await page.waitForSelector("#inbox-empty:not([hidden])", T);
  });

  await step("forward", async () => {
    await page.click("nav button[data-screen=forward]");
    await page.click("#forward-go");
    await page.waitForFunction(() => document.querySelector("#forward-result").textContent !== "", null, T);
    result.forward = await page.textContent("#forward-result");
  });

  await step("wrong-passphrase", async () => {
    await page.click("nav button[data-screen=setup]");
    await page.click("#lock");
    await page.fill("#unlock-passphrase", "not the passphrase");
    await page.click("#unlock");
    await page.waitForSelector("#error:not([hidden])", T);
    result.wrongPassphrase = await page.textContent("#error");
  });
} catch (error) {
  result.failure = error.message;
  exitCode = 1;
} finally {
  result.steps = steps;
  result.requests = requests;
  result.console = consoleLines;
  writeFileSync(config.output, JSON.stringify(result, null, 1));
  await context.close();
}
process.exit(exitCode);
