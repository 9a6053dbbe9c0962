// The MiniDapp end-to-end flow, driven by mns_site/tests/test_minidapp_e2e.py: `node e2e/minidapp.mjs CONFIG.json`.
// Headless Chromium (the machine's, through playwright-core) opens the MiniDapp that `make dapp` zipped, installed in
// simnet's MDS (READ permission), at the address the MiniHUB opens it with. Nothing but MDS and the gateway's API:
// the page reaches its node through /mdscommand_/ and the gateway through the node (MDS.net). It sets up, registers
// with live progress, reads what the `mns` CLI sent, replies (the receipt comes from service.js), looks at the
// settings, deletes, forwards, and shows each screen at phone width. Every request the page makes is written to
// CONFIG.output so the test can check where they went.
// CONFIG.hub ({url, password}) logs in at the node's MDS hub first (simnet's, or a real node's in interop mode).
// Requests to anything but loopback are refused (the real node's login page links Google's fonts) and listed in
// `blocked`.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { T, mailScreens, record, sendWithCli, stepper } from "./harness.mjs";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const requests = [];
const consoleLines = [];
const steps = [];
const blocked = [];

const browser = await chromium.launch({
  executablePath: config.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--ignore-certificate-errors"],
});
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1000, height: 800 } });
const page = await context.newPage();
record(context, page, requests, consoleLines);
await context.route(
  (url) => url.hostname !== "localhost" && !url.hostname.startsWith("127."),
  (route) => {
    blocked.push(route.request().url());
    return route.abort();
  },
);
const step = stepper(page, config.screenshots, steps, consoleLines);

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

let exitCode = 0;
const result = { phoneWidths: {} };
try {
  await step("opened-in-mds", async () => {
    if (config.hub) {
      // The node's own login page (its password), as a user reaches the MiniHUB before opening a MiniDapp.
      await page.goto(config.hub.url + "/");
      await page.fill("input[name=password]", config.hub.password);
      const [answer] = await Promise.all([
        page.waitForResponse((response) => response.url().includes("/login.html"), T),
        page.click("button[type=submit]"),
      ]);
      result.hubAfterLogin = ((await answer.text()).match(/Login successful[^<]*/) || [""])[0].trim();
      await page.screenshot({ path: join(config.screenshots, "hub-login.png"), fullPage: true });
    }
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

  sendWithCli(config.send);
  await mailScreens(page, step, result, config.replyText);

  for (const screen of ["setup", "register", "inbox", "compose", "forward", "settings"]) {
    result.phoneWidths[screen] = await phone(screen);
  }
} catch (error) {
  result.failure = error.message;
  exitCode = 1;
} finally {
  result.steps = steps;
  result.requests = requests;
  result.blocked = blocked;
  result.console = consoleLines;
  writeFileSync(config.output, JSON.stringify(result, null, 1));
  await browser.close();
}
process.exit(exitCode);
