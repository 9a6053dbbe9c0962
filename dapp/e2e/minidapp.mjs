// The MiniDapp end-to-end flow, driven by mns_site/tests/test_minidapp_e2e.py: `node e2e/minidapp.mjs CONFIG.json`.
// Headless Chromium (the machine's, through playwright-core) opens the MiniDapp that `make dapp` zipped, installed in
// simnet's MDS (READ permission), at the address the MiniHUB opens it with. Nothing but MDS and the gateway's API:
// the page reaches its node through /mdscommand_/ and the gateway through the node (MDS.net). It sets up, registers
// with live progress, reads what the `mns` CLI sent, replies (the receipt comes from service.js), looks at the
// settings, deletes, forwards, and shows each screen at phone width. Every request the page makes is written to
// CONFIG.output so the test can check where they went.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const requests = [];
const consoleLines = [];
const steps = [];
mkdirSync(config.screenshots, { recursive: true });

const browser = await chromium.launch({
  executablePath: config.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--ignore-certificate-errors"],
});
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1000, height: 800 } });
context.on("request", (request) => {
  requests.push({ method: request.method(), url: request.url(), headers: request.headers(), body: request.postData() || "" });
});
const page = await context.newPage();
page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));

let shot = 0;
async function step(name, work) {
  try {
    await work();
  } catch (error) {
    const problem = await page.locator("#error").textContent().catch(() => "");
    await page.screenshot({ path: join(config.screenshots, `failed-${name}.png`), fullPage: true });
    throw new Error(`step ${name}: ${error.message}\npage error box: ${problem}\nconsole:\n${consoleLines.join("\n")}`);
  }
  shot += 1;
  await page.screenshot({ path: join(config.screenshots, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  steps.push(name);
}

/** Each screen at a phone's width: nothing wider than the window. */
async function phone(screen) {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click(`nav button[data-screen=${screen}]`);
  await page.waitForTimeout(300);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: join(config.screenshots, `phone-${screen}.png`), fullPage: true });
  await page.setViewportSize({ width: 1000, height: 800 });
  return wide;
}

const T = { timeout: 90000 };
let exitCode = 0;
const result = { phoneWidths: {} };
try {
  await step("opened-in-mds", async () => {
    await page.goto(config.pageUrl);
    await page.waitForSelector("body[data-ready=true]", T);
    result.transport = await page.getAttribute("body", "data-transport");
    result.rpcFieldsHidden = await page.locator("#rpc-fields").isHidden();
  });

  await step("setup", async () => {
    await page.fill("#gateway-url", config.gatewayUrl);
    await page.click("#connect");
    await page.waitForFunction(() => document.querySelector("#node-status").textContent.startsWith("Connected"), null, T);
    result.nodeStatus = await page.textContent("#node-status");
    result.gatewayStatus = await page.textContent("#gateway-status");
    await page.fill("#new-passphrase", config.passphrase);
    await page.fill("#import-hex", config.boxPrivateHex);
    await page.click("#import-key");
    await page.waitForSelector("#key-open:not([hidden])", T);
    result.boxPublic = await page.textContent("#box-public");
  });

  await step("registered", async () => {
    await page.click("nav button[data-screen=register]");
    await page.fill("#reg-name", config.name);
    await page.click("#reg-go");
    await page.waitForFunction(() => document.querySelector("#notice").textContent.startsWith("Registered"), null, T);
    result.progress = await page.locator("#reg-progress li").allTextContents();
  });

  await step("reloaded", async () => {
    // The settings and the encrypted key are kept on the node (the MiniDapp's keypairs): a new page finds them.
    await page.goto(config.pageUrl);
    await page.waitForSelector("body[data-ready=true]", T);
    await page.waitForFunction(() => document.querySelector("#whoami").textContent.startsWith("you are"), null, T);
    result.whoamiAfterReload = await page.textContent("#whoami");
    await page.fill("#unlock-passphrase", config.passphrase);
    await page.click("#unlock");
    await page.waitForSelector("#key-open:not([hidden])", T);
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
    result.inboxRow = await page.locator("#inbox-list tbody tr").first().textContent();
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
    await page.waitForSelector("#receipt[data-status]", T); // the receipt service.js kept from the node's Maxima
    result.receipt = await page.textContent("#receipt");
    result.receiptStatus = await page.getAttribute("#receipt", "data-status");
    result.formAfterSend = await page.evaluate(() => ["to", "subject", "body"].map((id) => document.getElementById(id).value));
  });

  await step("settings", async () => {
    await page.click("nav button[data-screen=settings]");
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

  for (const screen of ["setup", "register", "inbox", "compose", "forward", "settings"]) {
    result.phoneWidths[screen] = await phone(screen);
  }
} catch (error) {
  result.failure = error.message;
  exitCode = 1;
} finally {
  result.steps = steps;
  result.requests = requests;
  result.console = consoleLines;
  writeFileSync(config.output, JSON.stringify(result, null, 1));
  await browser.close();
}
process.exit(exitCode);
