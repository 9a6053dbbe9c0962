// The user's own Minima node, from the browser: one POST per command with the command text as the body (ASCII;
// every payload is 0x hex), as docs/maxima/REFERENCE.md §1 describes. Without a password this is a CORS "simple
// request" (POST, text/plain, no custom header), which a node answers with Access-Control-Allow-Origin: *. With a
// password the Authorization header makes the browser ask first (OPTIONS preflight); a node does not answer that
// with Access-Control-Allow-Headers, so the browser refuses: we say so in words instead of "Failed to fetch".
// Inside a node's MiniDapp system (MDS passes ?uid=) commands go to the node's own MDS endpoint instead.

import { Refused, toHex } from "./mns.js";

const SAFE_VALUE = /^[A-Za-z0-9@:.#_~+/=-]+$/;

function value(text) {
  if (typeof text !== "string" || !SAFE_VALUE.test(text)) {
    throw new Refused("rpc_value_invalid", "A value for your node contains characters it cannot take safely.");
  }
  return text;
}

export class NodeRPC {
  /** `url`: the node's RPC (http://127.0.0.1:9005); `password`: its RPC password or ""; `mdsUid`: inside MDS. */
  constructor({ url, password = "", mdsUid = null }) {
    this.url = url;
    this.password = password;
    this.mdsUid = mdsUid;
  }

  async command(line) {
    const target = this.mdsUid ? `/mdscommand_/cmd?uid=${encodeURIComponent(this.mdsUid)}` : this.url;
    const init = { method: "POST", body: this.mdsUid ? encodeURIComponent(line) : line, cache: "no-store" };
    if (this.password && !this.mdsUid) init.headers = { Authorization: "Basic " + btoa(`minima:${this.password}`) };
    let response;
    try {
      response = await fetch(target, init);
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
    if (Array.isArray(reply)) reply = reply[reply.length - 1];
    if (!reply || reply.status !== true) {
      const why = (reply && (reply.error || reply.message)) || "unknown error";
      throw new Refused("node_refused", `Your node could not do "${line.split(" ")[0]}": ${why}`);
    }
    return reply.response;
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
