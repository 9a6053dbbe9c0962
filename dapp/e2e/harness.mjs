// What the two browser flows share (e2e/flow.mjs: the /app/ web page; e2e/minidapp.mjs: the MiniDapp in MDS): the
// record of every request the page makes, steps with a screenshot each, the `mns` CLI's message sent at the right
// moment, and the mail screens (inbox, read, reply, settings, delete, forward), which are the same in both.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export const T = { timeout: 90000 };

/** Every request of `context` into `requests`; the page's console lines into `consoleLines`. */
export function record(context, page, requests, consoleLines) {
  context.on("request", (request) => {
    requests.push({ method: request.method(), url: request.url(), headers: request.headers(), body: request.postData() || "" });
  });
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));
}

/** `step(name, work)`: run it, then a numbered full-page screenshot; on failure a `failed-` one and the why. */
export function stepper(page, screenshots, steps, consoleLines) {
  mkdirSync(screenshots, { recursive: true });
  let shot = 0;
  return async function step(name, work) {
    const started = Date.now();
    try {
      await work();
    } catch (error) {
      const problem = await page.locator("#error").textContent().catch(() => "");
      await page.screenshot({ path: join(screenshots, `failed-${name}.png`), fullPage: true });
      throw new Error(`step ${name}: ${error.message}\npage error box: ${problem}\nconsole:\n${consoleLines.join("\n")}`);
    }
    shot += 1;
    await page.screenshot({ path: join(screenshots, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
    steps.push({ name, ms: Date.now() - started });
  };
}

/** The CLI user's message to the Dapp's user (config.send: argv, env, cwd, text). */
export function sendWithCli(send) {
  execFileSync(send.argv[0], send.argv.slice(1), {
    input: send.text,
    env: send.env,
    cwd: send.cwd,
    stdio: ["pipe", "pipe", "inherit"],
    timeout: 120000,
  });
}

/** Inbox, read, reply (and its receipt), settings, delete, forward: what a registered user does with mail. */
export async function mailScreens(page, step, result, replyText) {
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
    await page.fill("#body", replyText);
    await page.click("#send");
    await page.waitForSelector("#receipt:not([hidden])", T);
    result.receiptSent = await page.textContent("#receipt");
    result.formAfterSend = await page.evaluate(() => ["to", "subject", "body"].map((id) => document.getElementById(id).value));
    await page.waitForSelector("#receipt[data-status]", T); // the gateway's receipt
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
    result.letterHiddenAfterDelete = await page.locator("#letter").isHidden();
  });

  await step("forward", async () => {
    await page.click("nav button[data-screen=forward]");
    await page.click("#forward-go");
    await page.waitForFunction(() => document.querySelector("#forward-result").textContent !== "", null, T);
    result.forward = await page.textContent("#forward-result");
  });
}
