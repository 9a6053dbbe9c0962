// The browser end-to-end flow, driven by mns_site/tests/test_dapp_e2e.py: `node e2e/flow.mjs CONFIG.json`.
// Headless Chromium (the machine's, through playwright-core) opens the Dapp at the gateway, sets up with the
// user's node and an imported box key, registers a name, reads a message the `mns` CLI sent (the CLI command
// is run from here at the right moment), replies, looks at the settings, forwards and deletes. Every request the
// page makes is written to CONFIG.requests so the test can check that no plaintext or key left the browser.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { T, mailScreens, record, sendWithCli, stepper } from "./harness.mjs";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const requests = [];
const consoleLines = [];
const steps = [];

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
const page = context.pages()[0] || (await context.newPage());
record(context, page, requests, consoleLines);
const step = stepper(page, config.screenshots, steps, consoleLines);

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

  sendWithCli(config.send);
  await mailScreens(page, step, result, config.replyText);

  await step("record-data", async () => {
    await page.click("nav button[data-screen=record]");
    await page.click("#record-load");
    await page.waitForSelector("#record-view dd", T);
    await page.fill("#data-json", JSON.stringify(config.record.data));
    await page.click("#data-save");
    await page.waitForFunction(() => document.querySelector("#record-result").textContent !== "", null, T);
    result.dataSaved = await page.textContent("#record-result");
    result.recordView = await page.locator("#record-view").textContent();
  });

  await step("record-offer", async () => {
    await page.evaluate(() => (document.querySelector("#record-result").textContent = ""));
    await page.fill("#transfer-to", config.record.offerTo);
    await page.click("#transfer-go");
    await page.waitForFunction(() => document.querySelector("#record-result").textContent !== "", null, T);
    result.offered = await page.textContent("#record-result");
    result.offerView = await page.locator("#record-view").textContent();
  });

  await step("record-withdrawn", async () => {
    await page.evaluate(() => (document.querySelector("#record-result").textContent = ""));
    await page.click("#transfer-cancel");
    await page.waitForFunction(() => document.querySelector("#record-result").textContent !== "", null, T);
    result.withdrawn = await page.textContent("#record-result");
    result.withdrawnView = await page.locator("#record-view").textContent();
  });

  await step("record-offer-accepted-by-the-cli", async () => {
    await page.evaluate(() => (document.querySelector("#record-result").textContent = ""));
    await page.click("#transfer-go");
    await page.waitForFunction(() => document.querySelector("#record-result").textContent !== "", null, T);
    result.accepted = execFileSync(config.record.accept.argv[0], config.record.accept.argv.slice(1), {
      env: config.record.accept.env,
      cwd: config.record.accept.cwd,
    }).toString();
    await page.click("#record-load");
    await page.waitForSelector("#error:not([hidden])", T);
    result.afterAccept = await page.textContent("#error");
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
