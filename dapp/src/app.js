// The MNS Dapp's screens. Everything secret stays here: the box private keys (in memory once unlocked, stored only
// encrypted), every plaintext (decrypted and encrypted in this page). The gateway sees ciphertexts, names and
// public keys; the user's node signs, decrypts maxencrypt blobs and sends over Maxima.

// One codebase, two transports: in a node's MiniDapp system (the page has MDS's ?uid=) the node is reached through
// MDS.cmd and the gateway through the node (MDS.net), and the MiniDapp's service.js keeps the gateway's receipts and
// verdicts that reach the node over Maxima; as the /app/ web page, the node is its RPC and the gateway this origin.

import { chainConfigOf, checkName, chooseGateway } from "./entrypoints.js";
import { humanBytes } from "./format.js";
import { FetchTransport, Gateway, inWords, MdsNetTransport } from "./gateway.js";
import * as keystore from "./keystore.js";
import { MDS } from "./mds-client.js";
import * as mns from "./mns.js";
import { NodeMDS, NodeRPC } from "./node.js";
import { latestFromService } from "./service-store.js";

const $ = (id) => document.getElementById(id);
const SETTINGS = "mns.settings";
const POLL_MS = 500;
const mds = MDS.fromLocation(location);

/** Settings and the encrypted box keys: this browser's localStorage for /app/, the MiniDapp's own keypair store
 * on the node inside MDS (every MiniDapp shares MDS's origin, hence its localStorage). */
const store = mds
  ? {
      get: async (key) => mds.keypairGet(key),
      set: async (key, value) => mds.keypairSet(key, value),
    }
  : {
      get: async (key) => localStorage.getItem(key),
      set: async (key, value) => (value === "" ? localStorage.removeItem(key) : localStorage.setItem(key, value)),
    };

const state = {
  sodium: null,
  gateway: mds ? null : new Gateway(new FetchTransport("")),
  settings: {},
  savedKeys: null, // the encrypted form, as stored
  info: null, // /.well-known/mns.json
  node: null, // a Node: NodeRPC (web page) or NodeMDS (MiniDapp)
  me: null, // {publickey, replyTo}
  keys: null, // [{public, private}], newest first, when unlocked
  name: null, // my MNS name
  sessions: new Map(), // "name/purpose" -> session token (memory only)
  open: null, // the message shown: {meta, letter, fromName}
};

// ------------------------------------------------------------------------------------------------ little helpers

function settings() {
  return state.settings;
}

async function saveSettings(changes) {
  state.settings = { ...state.settings, ...changes };
  await store.set(SETTINGS, JSON.stringify(state.settings));
}

async function loadStored() {
  state.settings = JSON.parse((await store.get(SETTINGS)) || "{}");
  const keys = await store.get(keystore.STORE);
  state.savedKeys = keys ? JSON.parse(keys) : null;
}

function pendingNotice(text) {
  $("pending").textContent = text || "";
  $("pending").hidden = !text;
}

function showError(error) {
  const box = $("error");
  box.textContent = error instanceof mns.Refused ? error.message : `Something went wrong: ${error.message || error}`;
  box.hidden = false;
  if (!(error instanceof mns.Refused)) console.error(error);
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function clearMessages() {
  $("error").hidden = true;
  notice("");
}

/** Run a button's work: errors shown in words, the button disabled meanwhile. */
function action(id, work) {
  $(id).addEventListener("click", async (event) => {
    event.preventDefault();
    clearMessages();
    const button = $(id);
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
}

function progress(list) {
  $(list).replaceChildren();
  return (text) => {
    const previous = $(list).lastElementChild;
    if (previous) previous.className = "done";
    const item = document.createElement("li");
    item.textContent = text;
    $(list).append(item);
  };
}

function show(screen) {
  for (const section of document.querySelectorAll(".screen")) section.hidden = section.id !== screen;
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("active", button.dataset.screen === screen);
  }
  if (screen === "inbox") closeLetter();
  if (screen === "inbox" && state.name && state.keys) refreshInbox().catch(showError);
  if (screen === "settings" && state.name && state.me) loadSettings().catch(showError);
}

function shortKey(key) {
  return key ? `${key.slice(60, 68)}…${key.slice(-16, -10)}` : "";
}

function whenSeconds(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function need(what) {
  if (what === "node" && !state.me) throw new mns.Refused("no_node", "Connect your Minima node first (Set-up).");
  if (what === "keys" && !state.keys) throw new mns.Refused("locked", "Unlock or create your box key first (Set-up).");
  if (what === "name" && !state.name) throw new mns.Refused("no_name", "Register a name first.");
}

function updateWho() {
  $("whoami").textContent = state.name ? `you are ${state.name}` : state.me ? "no name yet" : "not connected";
  $("inbox-name").textContent = state.name ? `of ${state.name}` : "";
}

// ------------------------------------------------------------------------------------------------------ set-up

/** The keys the gateway's Maxima replies come from: its identity key and those of its pool of nodes. */
async function gatewayKeys() {
  const { maxima } = await gatewayInfo();
  return [maxima.publickey, ...(Array.isArray(maxima.pool) ? maxima.pool : [])];
}

async function gatewayInfo() {
  if (!state.gateway) throw new mns.Refused("no_gateway", "Choose a gateway first (Set-up).");
  if (!state.info) {
    const info = await state.gateway.wellKnown();
    if (!info.maxima || !info.maxima.publickey || !info.maxima.address) {
      throw new mns.Refused("gateway_not_ready", "The gateway does not know its Maxima address yet. Try again soon.");
    }
    state.info = info;
  }
  return state.info;
}

function nodeOfForm() {
  if (mds) return new NodeMDS({ mds, onPending: pendingNotice });
  const url = $("rpc-url").value.trim() || "http://127.0.0.1:9005";
  const password = $("rpc-password").value;
  if (!/^https?:\/\/[^/\s]+\/?$/.test(url)) {
    throw new mns.Refused("rpc_url_invalid", "The RPC address looks like http://127.0.0.1:9005 (no path).");
  }
  return new NodeRPC({ url: url.replace(/\/$/, ""), password });
}

async function connect() {
  const node = nodeOfForm();
  const replyVia = $("reply-via").value || "auto";
  state.me = await node.identity({ replyVia });
  state.node = node;
  if (mds) await saveSettings({ replyVia });
  else await saveSettings({ rpcUrl: node.url, rpcPassword: node.password, replyVia });
  if (mds) await chooseGatewayFor(node);
  const how = { direct: "directly", contact: "through your node's Maxima host", max: "through your node's MLS" };
  $("node-status").textContent =
    `Connected. Your node's identity key: ${shortKey(state.me.publickey)}; ` +
    `the gateway answers ${how[state.me.replyVia]}.`;
  await findMyName();
}

/** The MiniDapp's gateway: the pinned one, else one of the entry points on chain read through the node (the
 * publisher's token and key learnt once from the gateway typed in Set-up), else that gateway itself. */
async function chooseGatewayFor(node) {
  const typed = $("gateway-url").value.trim().replace(/\/+$/, "");
  const pinned = $("gateway-pin").checked;
  if (typed && !/^https?:\/\/[^/\s]+$/.test(typed)) {
    throw new mns.Refused("gateway_url_invalid", "A gateway's address looks like https://mns.example.org (no path).");
  }
  let base = typed;
  let how = "the gateway you gave";
  let chain = settings().chain || null;
  if (!pinned) {
    if (!chain && typed) {
      chain = chainConfigOf(await new Gateway(new MdsNetTransport(mds, typed)).wellKnown().catch(() => null));
    }
    if (chain) {
      try {
        const chosen = await chooseGateway(node, chain, { minSeq: settings().chainSeq || 0 });
        base = chosen.base;
        how = `an entry point listed on chain (list ${chosen.seq})`;
        await saveSettings({ chain, chainSeq: chosen.seq });
      } catch (error) {
        if (!typed) throw error;
      }
    }
  }
  if (!base) {
    throw new mns.Refused("no_gateway", "Give the address of an MNS gateway to start from (Set-up, Gateway).");
  }
  state.gateway = new Gateway(new MdsNetTransport(mds, base));
  state.info = null;
  state.sessions.clear();
  await saveSettings({ gatewayUrl: typed, gatewayPinned: pinned, gatewayChosen: base });
  await store.set("gateway", base); // for service.js, which answers other MiniDapps' lookups there
  $("gateway-status").textContent = `Gateway: ${base} (${how}).`;
}

async function findMyName() {
  const saved = settings().name;
  const owned = await state.gateway.ownedNames(state.me.publickey).catch(() => ({ names: [] }));
  const active = (owned.names || []).filter((n) => n.status === "active").map((n) => n.name);
  state.name = active.includes(saved) ? saved : active[0] || null;
  updateWho();
}

function showKeyState() {
  const stored = state.savedKeys;
  $("key-open").hidden = !state.keys;
  $("key-locked").hidden = !!state.keys || !stored;
  $("key-none").hidden = !!state.keys || !!stored;
  if (state.keys) $("box-public").textContent = mns.toHex(state.keys[0].public);
}

async function saveKeys(stored) {
  await store.set(keystore.STORE, stored ? JSON.stringify(stored) : "");
  state.savedKeys = stored;
}

async function keep(keys, passphrase) {
  await saveKeys(await keystore.lock(keys, passphrase));
  state.keys = keys;
  showKeyState();
}

function exportKeys() {
  const blob = new Blob([JSON.stringify(state.savedKeys, null, 1)], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "mns-box-key.json";
  link.click();
  URL.revokeObjectURL(link.href);
}

async function importFile(file) {
  clearMessages();
  try {
    const stored = JSON.parse(await file.text());
    const passphrase = prompt("The passphrase of this key file:");
    state.keys = await keystore.unlock(stored, passphrase || "");
    await saveKeys(stored);
    showKeyState();
  } catch (error) {
    showError(error instanceof SyntaxError ? new mns.Refused("keyfile_invalid", "This is not an MNS key file.") : error);
  }
}

// ------------------------------------------------------------------------------------------------- handshakes

/** A session for `purpose` on `name`: the gateway's code, answered by the user's node over Maxima. */
async function session(name, purpose, say = () => {}) {
  const cached = state.sessions.get(`${name}/${purpose}`);
  if (cached) return cached;
  const verifier = mns.newVerifier();
  say("asking the gateway for a sign-in code");
  const issued = await state.gateway.challenge({ name, purpose, verifier_hash: await mns.verifierHash(verifier) });
  const token = await completeHandshake(issued, verifier, say);
  state.sessions.set(`${name}/${purpose}`, token);
  return token;
}

async function completeHandshake(issued, verifier, say) {
  const before = await state.gateway.challengeState(issued.id);
  say("your node answers the gateway's challenge over Maxima");
  const answer = mns.handshakeAnswer({ challenge: issued.id, code: issued.code, replyTo: state.me.replyTo });
  await state.node.send({ to: issued.gateway_address, application: "mns", data: answer });
  const deadline = Date.parse(issued.expires_at) || Date.now() + 300000;
  say("waiting for the gateway to see your node's answer");
  for (let round = 0; ; round++) {
    if (mds) {
      // The verdict reaches the node over Maxima and service.js keeps it; the gateway is asked only now and then
      // (a verdict can be lost, and a register waits for the network's claim after it).
      const verdict = await latestFromService(mds, "handshake-result", issued.id, await gatewayKeys());
      if (verdict && verdict.status === "failed") {
        throw new mns.Refused(verdict.reason || "failed", handshakeWords(verdict.reason || "failed"));
      }
      if ((!verdict || verdict.status !== "verified") && round % 10 !== 9) {
        if (Date.now() > deadline + 5000) throw new mns.Refused("challenge_expired", handshakeWords("challenge_expired"));
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        continue;
      }
    }
    const now = await state.gateway.challengeState(issued.id);
    if (now.status === "verified") break;
    if (now.status === "failed" || now.status === "expired") {
      throw new mns.Refused(now.reason || now.status, handshakeWords(now.reason || now.status));
    }
    if (typeof before.attempts_left === "number" && now.attempts_left < before.attempts_left) {
      throw new mns.Refused("answer_refused", "The gateway refused your node's answer: this node does not own the name.");
    }
    if (now.reason === "claim_open") {
      // A register answered, waiting for the MNS network to confirm the name: verified or failed when it is decided.
      say("your node answered; waiting for the MNS network to confirm the name");
      if (Date.now() > deadline + 300000) throw new mns.Refused("claim_expired", handshakeWords("claim_expired"));
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      continue;
    }
    if (Date.now() > deadline + 5000) throw new mns.Refused("challenge_expired", handshakeWords("challenge_expired"));
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  say("the gateway verified your node");
  const picked = await state.gateway.pickup(issued.id, verifier);
  return picked.token;
}

function handshakeWords(reason) {
  return (
    {
      challenge_expired: "The sign-in expired before the gateway heard from your node. Try again.",
      expired: "The sign-in expired before the gateway heard from your node. Try again.",
      code_wrong: "The gateway refused the code your node sent.",
      too_many_attempts: "Too many wrong answers: the sign-in was stopped.",
      challenge_used: "This sign-in was already used. Try again.",
      name_changed: "The name changed during the sign-in. Try again.",
      name_taken: "Another owner got this name first in the MNS network.",
      claim_expired: "The MNS network did not confirm the name in time. Try again.",
    }[reason] || `The sign-in failed (${reason}).`
  );
}

/** An owner's request with a session; a session that ran out is renewed once. */
async function owner(purpose, method, rest, json) {
  need("name");
  for (let attempt = 0; ; attempt++) {
    const token = await session(state.name, purpose);
    try {
      return await state.gateway.owner(method, state.name, rest, token, json);
    } catch (error) {
      const stale = error.status === 401 || ["session_invalid", "session_expired", "token_invalid"].includes(error.code);
      if (!stale || attempt > 0) throw error;
      state.sessions.delete(`${state.name}/${purpose}`);
    }
  }
}

// -------------------------------------------------------------------------------------------------- register

async function lastSeq(name) {
  try {
    return (await mns.verifiedRecord(name, await state.gateway.name(name))).seq;
  } catch (error) {
    if (error.code === "name_not_found") return 0;
    if (error.code === "name_released") {
      const history = await state.gateway.history(name);
      return Math.max(0, ...(history.results || []).map((entry) => entry.seq || 0));
    }
    throw error;
  }
}

async function register() {
  need("node");
  need("keys");
  const name = mns.normaliseName($("reg-name").value);
  const say = progress("reg-progress");
  const info = await gatewayInfo();
  say(`checking that ${name} is free`);
  const statement = {
    v: 1,
    op: "register",
    name,
    owner: state.me.publickey,
    box_key: mns.toHex(state.keys[0].public),
    seq: (await lastSeq(name)) + 1,
    issued_at: Date.now(),
    gateway: info.maxima.publickey,
  };
  mns.checkStatement(statement);
  say("your node signs the binding of the name to your keys (maxsign)");
  const signature = mns.toHex(await state.node.sign(mns.statementCanonical(statement)));
  await mns.verifyStatement({ statement, signature });
  const verifier = mns.newVerifier();
  say(`asking the gateway for ${name}`);
  const pending = await state.gateway.register({
    statement,
    signature,
    address: state.me.replyTo,
    verifier_hash: await mns.verifierHash(verifier),
  });
  const token = await completeHandshake(pending.handshake, verifier, say);
  state.sessions.set(`${name}/register`, token);
  state.name = name;
  await saveSettings({ name });
  updateWho();
  say(`${name} is yours`);
  $("reg-progress").lastElementChild.className = "done";
  notice(`Registered: ${name}. People can now write to you.`);
}

// ----------------------------------------------------------------------------------------------------- inbox

async function refreshInbox() {
  need("name");
  need("keys");
  const body = await owner("read", "GET", "/messages?limit=200");
  const rows = (body.results || []).map((meta) => {
    const row = document.createElement("tr");
    row.dataset.id = meta.id;
    const open = document.createElement("button");
    open.textContent = "Open";
    open.addEventListener("click", () => openMessage(meta.id).catch(showError));
    const cells = [whenSeconds(meta.received_at), shortKey(meta.sender) + (meta.sender_verified ? "" : " (unverified)"), humanBytes(meta.size)];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const last = document.createElement("td");
    last.append(open);
    row.append(last);
    return row;
  });
  $("inbox-list").tBodies[0].replaceChildren(...rows);
  $("inbox-empty").hidden = rows.length > 0;
}

async function decrypt(meta, ciphertext) {
  if (meta.scheme === mns.SCHEME_NACL) {
    return mns.unseal(state.sodium, state.keys.map((k) => k.private), ciphertext);
  }
  if (meta.scheme === mns.SCHEME_RSA) {
    try {
      return await state.node.maxdecrypt(ciphertext);
    } catch {
      throw new mns.Refused("envelope_undecryptable", "Your node could not open this message (maxdecrypt).");
    }
  }
  throw new mns.Refused("envelope_scheme_unknown", "This message uses an encryption this page does not know.");
}

const LETTER_WORDS = {
  envelope_undecryptable: "This message does not open with your keys.",
  envelope_invalid: "This message is damaged or not an MNS letter.",
  envelope_signature_invalid: "This message's signature is wrong: it may have been altered. It is not shown.",
  envelope_wrong_recipient: "This letter was written to someone else and re-sent to you. It is not shown.",
  envelope_sender_mismatch: "This letter was sent by another node than the one that signed it. It is not shown.",
};

function closeLetter() {
  state.open = null;
  state.opening = null;
  $("letter").hidden = true;
}

async function openMessage(id) {
  clearMessages();
  state.opening = id; // a letter that arrives after another was opened, or after a delete, is not shown
  const meta = await owner("read", "GET", `/messages/${encodeURIComponent(id)}`);
  let letter;
  try {
    const plaintext = await decrypt(meta, mns.fromHex(meta.ciphertext));
    letter = await mns.openLetter(plaintext, {
      name: state.name,
      deliverySender: meta.sender_verified ? meta.sender : null,
    });
  } catch (error) {
    $("letter").hidden = true;
    throw new mns.Refused(error.code || "envelope_invalid", LETTER_WORDS[error.code] || error.message);
  }
  let fromName = null;
  if (letter.from_name) {
    try {
      const record = await mns.verifiedRecord(letter.from_name, await state.gateway.name(letter.from_name));
      fromName = record.owner === letter.from ? letter.from_name : null;
    } catch {
      fromName = null;
    }
  }
  if (state.opening !== id) return;
  state.open = { meta, letter, fromName };
  $("letter-from").textContent = fromName || letter.from_name || shortKey(letter.from);
  const badge = $("letter-verified");
  badge.textContent = fromName ? "verified" : letter.from_name ? "name NOT verified" : "key only";
  badge.className = `badge ${fromName ? "ok" : "warn"}`;
  $("letter-sent").textContent = new Date(letter.sent_at).toLocaleString();
  $("letter-subject").textContent = letter.subject || "(no subject)";
  $("letter-body").textContent = "body" in letter ? letter.body : `(binary, ${mns.fromBase64(letter.body_b64).length} bytes)`;
  $("letter").hidden = false;
}

async function deleteOpen() {
  if (!state.open) return;
  await owner("read", "DELETE", `/messages/${encodeURIComponent(state.open.meta.id)}`);
  closeLetter();
  notice("Deleted.");
  await refreshInbox();
}

function replyOpen() {
  if (!state.open) return;
  const { letter, fromName } = state.open;
  if (!fromName) {
    throw new mns.Refused("no_reply_name", "The sender has no verified MNS name to answer to.");
  }
  $("to").value = fromName;
  const subject = letter.subject || "";
  $("subject").value = subject.startsWith("Re: ") ? subject : `Re: ${subject}`.slice(0, 200).trim();
  $("body").value = "";
  show("compose");
}

// ------------------------------------------------------------------------------------------------------ send

async function send() {
  need("node");
  const to = mns.normaliseName($("to").value);
  const text = $("body").value;
  const subject = $("subject").value.trim();
  const say = progress("send-progress");
  $("receipt").hidden = true;
  const info = await gatewayInfo();
  say(`looking up ${to} and checking its owner's signature`);
  const looked = await state.gateway.name(to);
  const record = await mns.verifiedRecord(to, looked);
  say("checking the gateway's proof against the directory root on chain");
  const directory = await directoryOf(to, looked);
  if (directory.failed) {
    throw new mns.Refused(directory.status, `Not sent: do not trust this gateway's answer about ${to}: ${directory.detail}.`);
  }
  $("to-status").textContent = `${to}: binding verified (owner ${shortKey(record.owner)}); ${directory.detail}`;
  if (!record.box_key) throw new mns.Refused("no_box_key", `${to} has no box key to write to.`);
  const id = mns.newDeliveryId();
  const letter = mns.makeLetter({
    id,
    from: state.me.publickey,
    to,
    sentAt: Date.now(),
    body: text,
    subject: subject || undefined,
    fromName: state.name || undefined,
  });
  say("your node signs the letter (maxsign)");
  const signature = await state.node.sign(mns.letterCanonical(letter));
  if (!(await mns.rsaVerify(state.me.publickey, mns.letterCanonical(letter), signature))) {
    throw new mns.Refused("signature_invalid", "Your node's signature does not match its own key.");
  }
  say("encrypting here, to the recipient's box key");
  const ciphertext = mns.seal(state.sodium, mns.fromHex(record.box_key), mns.signedLetterBytes(letter, signature));
  const limit = (info.limits && info.limits.max_message_bytes) || 65536;
  if (ciphertext.length > limit) {
    throw new mns.Refused("too_large", `The message is too long: ${ciphertext.length} bytes encrypted, at most ${limit}.`);
  }
  say(`your node sends the ciphertext to the gateway (${ciphertext.length} bytes)`);
  const data = mns.deliverMessage({
    id,
    to,
    scheme: mns.SCHEME_NACL,
    ciphertext,
    replyTo: state.me.replyTo,
    owner: record.owner,
  });
  const sent = await state.node.send({ to: info.maxima.address, application: "mns", data });
  say("delivered");
  $("send-progress").lastElementChild.className = "done";
  const receipt = $("receipt");
  receipt.textContent =
    `Sent to ${to}: your node delivered it to the gateway over Maxima (delivery ${id}, Maxima message ` +
    `${sent.msgid}). The gateway's signed receipt goes to your node.`;
  receipt.dataset.delivery = id;
  delete receipt.dataset.status;
  receipt.hidden = false;
  for (const field of ["to", "subject", "body"]) $(field).value = "";
  $("to-status").textContent = "";
  awaitReceipt(id, to); // not awaited: the button is free again while the gateway's receipt is looked for
}

const RECEIPT_POLL_MS = 500;
const RECEIPT_WAIT_MS = 60000;
const RECEIPT_RETRY = ["receipt_not_found", "throttled", "gateway_unreachable"];

/** The gateway's receipt goes to the user's node over Maxima, which a page cannot read: ask the gateway for it
 * instead (the delivery id is ours and secret) and show it, unless another message was sent meanwhile. */
async function awaitReceipt(id, to) {
  const deadline = Date.now() + RECEIPT_WAIT_MS;
  while (Date.now() < deadline) {
    let answer = null;
    try {
      // In the MiniDapp the receipt reaches the node over Maxima and service.js keeps it: no gateway polling.
      answer = mds
        ? await latestFromService(mds, "receipt", id, await gatewayKeys())
        : await state.gateway.receipt(id, state.me.publickey);
    } catch (error) {
      if (!(error instanceof mns.Refused) || !RECEIPT_RETRY.includes(error.code)) {
        return; // nothing more to learn; the text stays as it is
      }
    }
    const receipt = $("receipt");
    if (receipt.dataset.delivery !== id) return;
    if (answer && answer.status === "stored") {
      receipt.textContent = `Stored in ${to}'s mailbox (delivery ${id}, message ${answer.message_id}).`;
      receipt.dataset.status = "stored";
      return;
    }
    if (answer && answer.status === "refused") {
      receipt.textContent = `Not stored in ${to}'s mailbox: ${inWords(answer.reason, answer.detail)}`;
      receipt.dataset.status = "refused";
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, RECEIPT_POLL_MS));
  }
}

// --------------------------------------------------------------------------------------- forward and settings

async function forward() {
  const result = await owner("forward", "POST", "/forward", { delete_after: $("forward-delete").checked });
  const count = result.queued + result.retried + result.in_flight;
  $("forward-result").textContent = count
    ? `The gateway is forwarding ${count} message(s) to your node (${result.queued} new, ${result.retried} retried, ${result.in_flight} already on their way).`
    : "There is nothing to forward.";
}

function showMailbox(box) {
  const q = box.quota || {};
  const rows = [
    ["Messages", `${q.messages} of ${Number(q.max_messages).toLocaleString("en")}`],
    ["Storage", `${humanBytes(q.bytes)} of ${humanBytes(q.max_bytes)}`],
    ["Kept for", `${box.retention_days} days`],
  ];
  $("quota").replaceChildren(
    ...rows.flatMap(([term, detail]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = detail;
      return [dt, dd];
    }),
  );
  $("retention").value = box.retention_days_chosen ?? "";
  $("blocked").value = (box.blocked || []).join("\n");
}

async function loadSettings() {
  showMailbox(await owner("read", "GET", ""));
}

async function saveMailbox() {
  const retention = $("retention").value.trim();
  const blocked = $("blocked").value.split(/\s+/).filter(Boolean);
  for (const key of blocked) {
    if (!mns.isPublicKeyHex(key)) throw new mns.Refused("key_invalid", `Not an identity key: ${key.slice(0, 20)}…`);
  }
  const box = await owner("manage", "PATCH", "", { retention_days: retention ? Number(retention) : null, blocked });
  showMailbox(box);
  $("settings-result").textContent = "Saved.";
}

// ------------------------------------------------------------------------------------- the name's record

async function currentRecord(name) {
  return mns.verifiedRecord(name, await state.gateway.name(name));
}

/** Sign `statement` on the node, check it here, and send it; `purpose`: the session it needs (none: an accept). */
async function publish(statement, purpose) {
  const signature = mns.toHex(await state.node.sign(mns.statementCanonical(statement)));
  await mns.verifyStatement({ statement, signature });
  const auth = purpose ? `MNS-Session ${await session(statement.name, purpose)}` : undefined;
  const path = `/api/v1/names/${encodeURIComponent(statement.name)}/statements`;
  const body = await state.gateway.request("POST", path, { json: { statement, signature }, auth });
  return mns.verifiedRecord(statement.name, body);
}

/** The owner's current record and its signed statement, refused when this node does not hold the name. */
async function myRecord() {
  need("node");
  need("name");
  const body = await state.gateway.name(state.name);
  const record = await mns.verifiedRecord(state.name, body);
  if (record.owner !== state.me.publickey) {
    throw new mns.Refused("not_owner", `Your node does not hold ${state.name} any more.`);
  }
  return { record, statement: body.statement, body };
}

/** The lookup's proof checked against the directory root on chain, read through the user's node as `mns whois`
 * does (docs/protocol.md "Transparency"): the outcome of `checkName`, never thrown. */
async function directoryOf(name, body) {
  const config = settings().chain || chainConfigOf(await gatewayInfo().catch(() => null));
  const history = async () => {
    const page = await state.gateway.history(name).catch(() => ({ results: [] }));
    return (page.results || []).map((entry) => ({ statement: entry.statement, signature: entry.signature }));
  };
  const outcome = await checkName({ node: state.node, config, name, body, minSeq: settings().chainSeq || 0, history });
  if (outcome.bulletin && outcome.bulletin > (settings().chainSeq || 0)) await saveSettings({ chainSeq: outcome.bulletin });
  return outcome;
}

function directoryWords(directory) {
  return directory.failed ? `NOT trusted: ${directory.detail}.` : `${directory.detail}.`;
}

function rowsInto(id, rows) {
  $(id).replaceChildren(
    ...rows.flatMap(([term, detail]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = detail;
      return [dt, dd];
    }),
  );
}

function recordRows(record) {
  const offer = record.transfer;
  return [
    ["Owner", shortKey(record.owner)],
    ["Data", record.data ? JSON.stringify(record.data) : "none"],
    ["Transfer", offer ? `offered to ${shortKey(offer.to)} until ${new Date(offer.expires_at).toLocaleString()}` : "-"],
  ];
}

function showRecord(record, directory = null) {
  const rows = recordRows(record);
  if (directory) rows.push(["Directory", directoryWords(directory)]);
  rowsInto("record-view", rows);
  $("record-view").dataset.directory = directory ? directory.status : "";
  $("data-json").value = record.data ? JSON.stringify(record.data, null, 1) : "";
}

async function loadRecord() {
  const { record, body } = await myRecord();
  showRecord(record, await directoryOf(record.name, body));
}

/** Any name, as `mns whois` shows it: the binding verified here, then its proof against the root on chain. A
 * gateway proven wrong is named as such and its record is not shown. */
async function lookupName() {
  const name = mns.normaliseName($("lookup-name").value);
  const body = await state.gateway.name(name);
  const record = await mns.verifiedRecord(name, body);
  const directory = await directoryOf(name, body);
  $("lookup-view").dataset.directory = directory.status;
  if (directory.failed) {
    rowsInto("lookup-view", [["Directory", directoryWords(directory)]]);
    throw new mns.Refused(directory.status, `Do not trust this gateway's answer about ${name}: ${directory.detail}.`);
  }
  rowsInto("lookup-view", [
    ["Name", record.name],
    ...recordRows(record),
    ["Box key", record.box_key ? `${record.box_key.slice(0, 18)}…` : "-"],
    ["Signature", "verified here: the owner key signed this binding"],
    ["Directory", directoryWords(directory)],
  ]);
}

async function saveData() {
  const data = mns.parseData($("data-json").value);
  const { statement } = await myRecord();
  const record = await publish(mns.ownerStatement(statement, "update", { data }), "rotate");
  showRecord(record);
  $("record-result").textContent = data ? "Your data record is published." : "Your data record is removed.";
}

async function offerName() {
  const typed = $("transfer-to").value.trim();
  const to = mns.isPublicKeyHex(typed) ? typed : (await currentRecord(mns.normaliseName(typed))).owner;
  const days = Number($("transfer-days").value || mns.TRANSFER_DAYS);
  if (!Number.isInteger(days) || days < 1 || days > 30) {
    throw new mns.Refused("days_invalid", "An offer stands 1 to 30 days.");
  }
  const { statement } = await myRecord();
  const now = Date.now();
  const record = await publish(mns.transferStatement(statement, to, mns.offerDeadline(days, now), now), "delete");
  showRecord(record);
  $("record-result").textContent = `${record.name} is offered to ${shortKey(to)}: yours until that node accepts.`;
}

async function withdrawOffer() {
  const { record, statement } = await myRecord();
  if (!record.transfer) throw new mns.Refused("transfer_not_pending", "No offer of your name is pending.");
  showRecord(await publish(mns.ownerStatement(statement, "update"), "rotate"));
  $("record-result").textContent = "The offer is withdrawn.";
}

async function acceptName() {
  need("node");
  need("keys");
  const name = mns.normaliseName($("accept-name").value);
  const body = await state.gateway.name(name);
  await mns.verifiedRecord(name, body);
  const info = await gatewayInfo();
  const statement = mns.acceptStatement(body.statement, {
    owner: state.me.publickey,
    boxKey: mns.toHex(state.keys[0].public),
    gateway: info.maxima.publickey,
  });
  const record = await publish(statement, null);
  state.name = record.name;
  saveSettings({ name: record.name });
  updateWho();
  // The new mailbox knows no address yet (the statement carries none): forwards go there.
  await owner("manage", "PATCH", "", { address: state.me.replyTo });
  showRecord(record);
  $("record-result").textContent = `${record.name} is yours, with your own box key and an empty mailbox.`;
}

// ------------------------------------------------------------------------------------------------------- start

async function start() {
  if (!globalThis.sodium) throw new Error("the crypto library did not load");
  await globalThis.sodium.ready;
  state.sodium = globalThis.sodium;
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => {
      clearMessages();
      show(button.dataset.screen);
    });
  }
  action("connect", connect);
  action("create-key", async () => {
    const pair = state.sodium.crypto_box_keypair();
    await keep([{ public: pair.publicKey, private: pair.privateKey }], $("new-passphrase").value);
    $("new-passphrase").value = "";
  });
  action("import-key", async () => {
    await keep([keystore.fromPrivateHex(state.sodium, $("import-hex").value)], $("new-passphrase").value);
    $("import-hex").value = "";
    $("new-passphrase").value = "";
  });
  $("import-file").addEventListener("change", (event) => event.target.files[0] && importFile(event.target.files[0]));
  action("unlock", async () => {
    state.keys = await keystore.unlock(state.savedKeys, $("unlock-passphrase").value);
    $("unlock-passphrase").value = "";
    showKeyState();
  });
  action("lock", async () => {
    state.keys = null;
    showKeyState();
  });
  action("forget-key", async () => {
    if (confirm("Forget the box key here? Without an exported key file, your messages cannot be read.")) {
      await saveKeys(null);
      showKeyState();
    }
  });
  action("export-key", async () => exportKeys());
  action("reg-go", register);
  action("inbox-refresh", refreshInbox);
  action("letter-delete", deleteOpen);
  action("letter-reply", async () => replyOpen());
  action("send", send);
  action("forward-go", forward);
  action("settings-save", saveMailbox);
  action("record-load", loadRecord);
  action("lookup-go", lookupName);
  action("data-save", saveData);
  action("transfer-go", offerName);
  action("transfer-cancel", withdrawOffer);
  action("accept-go", acceptName);
  await loadStored();
  const saved = settings();
  document.body.dataset.transport = mds ? "mds" : "rpc";
  $("rpc-fields").hidden = !!mds;
  $("gateway-fields").hidden = !mds;
  $("rpc-url").value = saved.rpcUrl || "";
  $("rpc-password").value = saved.rpcPassword || "";
  $("reply-via").value = saved.replyVia || "auto";
  $("gateway-url").value = saved.gatewayUrl || "";
  $("gateway-pin").checked = !!saved.gatewayPinned;
  showKeyState();
  updateWho();
  // Sessions end with the page (best effort: they expire anyway), as the CLI revokes its own when done.
  addEventListener("pagehide", () => {
    for (const token of state.sessions.values()) {
      if (mds) state.gateway.endSession(token);
      else fetch("/api/v1/session", { method: "DELETE", headers: { Authorization: `MNS-Session ${token}` }, keepalive: true });
    }
    state.sessions.clear();
  });
  document.body.dataset.ready = "true";
  if (saved.rpcUrl || (mds && (saved.gatewayUrl || saved.chain))) connect().catch(showError);
}

start().catch(showError);
