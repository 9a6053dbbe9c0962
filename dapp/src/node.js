// The user's own Minima node, behind one interface with two transports (the rest of the Dapp sees only `Node`):
// - `NodeRPC`, the /app/ web page: one POST per command to the node's RPC with the command text as the body (ASCII;
//   every payload is 0x hex), as docs/maxima/REFERENCE.md §1 describes. Without a password this is a CORS "simple
//   request" (POST, text/plain, no custom header), which a node answers with Access-Control-Allow-Origin: *. With
//   a password the Authorization header makes the browser ask first (OPTIONS preflight); a node does not answer
//   that with Access-Control-Allow-Headers, so the browser refuses: we say so in words instead of "Failed to fetch".
// - `NodeMDS`, the MiniDapp: `MDS.cmd` through the node's MiniDapp system (no RPC port, no password in the page).
//   A MiniDapp with READ permission gets `pending:true` for a command that needs the user (sign, send; fixture
//   196): the page says what to accept in the MiniHUB and waits for the node's MDS_PENDING verdict.

import { Refused, toHex } from "./mns.js";

const SAFE_VALUE = /^[A-Za-z0-9@:.#_~+/=-]+$/;

function value(text) {
  if (typeof text !== "string" || !SAFE_VALUE.test(text)) {
    throw new Refused("rpc_value_invalid", "A value for your node contains characters it cannot take safely.");
  }
  return text;
}

/** A node command's answer (one envelope, or the last of a `;` batch): its `response`, else a Refused in words. */
export function answerOf(line, reply) {
  if (Array.isArray(reply)) reply = reply[reply.length - 1];
  if (!reply || reply.status !== true) {
    const why = (reply && (reply.error || reply.message)) || "unknown error";
    throw new Refused("node_refused", `Your node could not do "${line.split(" ")[0]}": ${why}`);
  }
  return reply.response;
}

/** What every transport shares: the commands the Dapp uses. A transport implements `command(line)`. */
export class Node {
  /** The node's `response` to one command line (throws Refused). */
  async command(line) {
    throw new Error(`${this.constructor.name} does not implement command(${line.split(" ")[0]})`);
  }

  /** `maxima action:info`: the identity key (the owner key of your names) and the address the gateway answers,
   * as `replyVia` says (docs/protocol.md, "Reply addresses"): auto, direct, contact or max. */
  async identity({ replyVia = "auto" } = {}) {
    const info = await this.command("maxima action:info");
    const via = replyVia === "auto" ? await this.reachedVia(info) : replyVia;
    return { publickey: info.publickey, replyTo: replyAddress(info, via), replyVia: via, name: info.name };
  }

  /** As `mns init` measures it: `direct` for a node with no Maxima host, else one byte from the node to its own
   * p2pidentity; when nothing answers there, the gateway must reach the node through its host (`contact`). */
  async reachedVia(info) {
    const own = info.p2pidentity || info.localidentity;
    if (!info.contact || info.contact === own) return "direct";
    try {
      const sent = await this.command(`maxima action:send to:${value(own)} application:mns-probe data:0x00`);
      return sent.delivered === true ? "direct" : "contact";
    } catch {
      return "contact";
    }
  }

  /** `maxsign`: your node signs `data` with its identity key; returns the 128-byte signature. */
  async sign(data) {
    const response = await this.command(`maxsign data:${toHex(data)}`);
    return hexBytes(response.signature);
  }

  /** `maxdecrypt`: your node opens a `maxencrypt` blob made to its key. */
  async maxdecrypt(blob) {
    const response = await this.command(`maxdecrypt data:${toHex(blob)}`);
    return hexBytes(response.decrypted);
  }

  /** `maxima action:send`; only `delivered:true` counts as sent. */
  async send({ to, application, data }) {
    const line = `maxima action:send to:${value(to)} application:${value(application)} data:${toHex(data)}`;
    const response = await this.command(line);
    if (response.delivered !== true) {
      throw new Refused(
        "not_delivered",
        `Your node could not reach the gateway over Maxima (${response.error || "not delivered"}). Try again.`,
      );
    }
    return response;
  }
}

export class NodeRPC extends Node {
  /** `url`: the node's RPC (http://127.0.0.1:9005); `password`: its RPC password or "". */
  constructor({ url, password = "" }) {
    super();
    this.url = url;
    this.password = password;
  }

  describe() {
    return `your node at ${this.url}`;
  }

  async command(line) {
    const init = { method: "POST", body: line, cache: "no-store" };
    if (this.password) init.headers = { Authorization: "Basic " + btoa(`minima:${this.password}`) };
    let response;
    try {
      response = await fetch(this.url, init);
    } catch {
      throw new Refused(
        "node_unreachable",
        this.password
          ? `Your node at ${this.url} did not answer this page. A node with an RPC password cannot be used from a ` +
            "web page (it does not answer the browser's CORS check): install the MNS MiniDapp on your node, or " +
            "use an RPC without a password that only your own machine can reach."
          : `Your node at ${this.url} did not answer. Is it running, with RPC enabled (-rpcenable), at this address?`,
      );
    }
    if (response.status === 401) {
      throw new Refused("node_auth_failed", "Your node refused the RPC password. Check it in Set-up.");
    }
    let reply;
    try {
      reply = JSON.parse(await response.text());
    } catch {
      throw new Refused("node_bad_reply", `The address ${this.url} answered, but not like a Minima node.`);
    }
    return answerOf(line, reply);
  }
}

/** What the user must accept in the MiniHUB for a pending command, in words. */
export function pendingWords(line) {
  const verb = line.split(" ")[0];
  const what =
    {
      maxsign: "signing with your node's Maxima identity key (maxsign)",
      maxdecrypt: "opening a message with your node's Maxima key (maxdecrypt)",
      maxima: "sending a Maxima message (maxima action:send)",
    }[verb] || `the command "${verb}"`;
  return (
    `Your node asks you to approve ${what}: open the MiniHUB's pending actions and accept it ` +
    "(or give MNS mail WRITE permission there to skip this)."
  );
}

export class NodeMDS extends Node {
  /** `mds`: an `MDS` client (mds.js); `onPending(text|null)`: shows the user what to accept, null when done. */
  constructor({ mds, onPending = () => {} }) {
    super();
    this.mds = mds;
    this.onPending = onPending;
    this.verdicts = new Map(); // pendinguid -> MDS_PENDING data, for a verdict that came before we waited
    this.waiting = new Map();
    mds.on((event, data) => {
      if (event !== "MDS_PENDING" || !data) return;
      const resolve = this.waiting.get(data.uid);
      if (resolve) resolve(data);
      else this.verdicts.set(data.uid, data);
    });
  }

  describe() {
    return "your node (through its MiniDapp system)";
  }

  async command(line) {
    let reply;
    try {
      reply = await this.mds.cmd(line);
    } catch {
      throw new Refused("node_unreachable", "Your node's MiniDapp system did not answer. Is your node running?");
    }
    const last = Array.isArray(reply) ? reply[reply.length - 1] : reply;
    if (last && last.pending === true && last.pendinguid) return this.approved(line, last.pendinguid);
    return answerOf(line, reply);
  }

  /** Wait for the user's verdict on a pending command (MDS_PENDING); accepted, its result is the command's. */
  async approved(line, uid) {
    this.onPending(pendingWords(line));
    try {
      const verdict =
        this.verdicts.get(uid) || (await new Promise((resolve) => this.waiting.set(uid, resolve)));
      if (!verdict.accept) {
        throw new Refused("pending_denied", `You declined it in the MiniHUB, so "${line.split(" ")[0]}" was not done.`);
      }
      return answerOf(line, verdict.result);
    } finally {
      this.verdicts.delete(uid);
      this.waiting.delete(uid);
      this.onPending(null);
    }
  }
}

export const REPLY_VIA = ["auto", "direct", "contact", "max"];

/** The reply address for `via` from `maxima action:info`: the p2pidentity, the contact (through the node's host)
 * or `MAX#<identity key>#<MLS>`. */
export function replyAddress(info, via) {
  if (via === "direct") return info.p2pidentity || info.localidentity;
  if (via === "contact") return info.contact;
  if (via === "max") return `MAX#${info.publickey}#${info.mls}`;
  throw new Refused("reply_via_invalid", `Replies go direct, through a contact or a MAX# address, not "${via}".`);
}

function hexBytes(text) {
  const out = new Uint8Array((text.length - 2) / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 + 2 * i, 2), 16);
  return out;
}
