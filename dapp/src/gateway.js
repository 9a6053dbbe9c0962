// The gateway's REST API (docs/protocol.md): JSON in and out, its error shape {"error","detail"} turned into
// `Refused` with a sentence a user understands. Sessions come from handshakes answered by the user's node. Two
// transports carry it: the page's own fetch (/app/) and the user's node (the MiniDapp, MDS.net).

import { Refused } from "./mns.js";

const API = "/api/v1/";

const WORDS = {
  name_taken: "Someone already holds this name. Try another one.",
  name_reserved: "This name is reserved. Try another one.",
  name_not_found: "Nobody holds this name.",
  name_released: "This name was released by its owner.",
  name_pending: "This name is still being registered.",
  too_many_challenges: "Too many sign-in attempts are open for this name. Wait a few minutes.",
  throttled: "Too many requests. Wait a minute and try again.",
  gateway_not_ready: "The gateway is still starting. Try again in a minute.",
  session_invalid: "Your sign-in ran out. Try again.",
  message_not_found: "This message is no longer there.",
  retention_invalid: "The number of days is not allowed by this gateway.",
  sender_on_both_lists: "A key cannot be both blocked and allowed.",
  address_missing: "The gateway does not know your node's address yet.",
  // a delivery's refusal reasons (the receipt's `reason`, mns_client.protocol.mailbox.REFUSALS)
  malformed: "The gateway could not read the message your node sent.",
  unknown_name: "Nobody holds this name at this gateway.",
  suspended: "This mailbox is suspended by the gateway's staff.",
  bad_scheme: "The gateway does not take this kind of encryption.",
  too_large: "The message is too long for this gateway.",
  blocked: "The recipient does not take messages from you.",
  rate_limited: "You sent too many messages to this mailbox. Wait a minute and try again.",
  over_quota: "The recipient's mailbox is full.",
};

/** A code of the gateway (an error or a refusal reason) in words, else its own detail. */
export function inWords(code, detail) {
  return WORDS[code] || detail || code;
}

/** The gateway's HTTP answer as `{status, body}` (body: the parsed JSON, or null). A transport implements
 * `exchange(method, path, {json, auth})` and throws Refused("gateway_unreachable") when nothing answered. */
export class FetchTransport {
  /** The /app/ page: the browser's own fetch, to `base` ("" = the origin that served the page). */
  constructor(base = "") {
    this.base = base.replace(/\/$/, "");
  }

  describe() {
    return this.base || location.origin;
  }

  async exchange(method, path, { json, auth } = {}) {
    const headers = { Accept: "application/json" };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    if (auth) headers.Authorization = auth;
    let response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: json === undefined ? undefined : JSON.stringify(json),
        cache: "no-store",
        redirect: "error",
      });
    } catch {
      throw new Refused("gateway_unreachable", "The gateway does not answer. Check your connection and try again.");
    }
    let body = null;
    if (response.status !== 204) {
      try {
        body = await response.json();
      } catch {
        body = null;
      }
    }
    return { status: response.status, body };
  }
}

/** The MiniDapp: the user's NODE fetches the gateway (MDS.net, so no CORS). The node sends no header of ours, counts
 * only HTTP 200 and has no DELETE or PATCH, so every request goes as one POST to the gateway's relay
 * (`POST /api/v1/relay`, docs/protocol.md "The MiniDapp"), which answers 200 with the API's own status and body. */
export class MdsNetTransport {
  constructor(mds, base) {
    this.mds = mds;
    this.base = base.replace(/\/$/, "");
  }

  describe() {
    return this.base;
  }

  async exchange(method, path, { json, auth } = {}) {
    const request = { method, path };
    if (auth) request.authorization = auth;
    if (json !== undefined) request.json = json;
    let reply;
    try {
      reply = await this.mds.netPost(`${this.base}/api/v1/relay`, JSON.stringify(request));
    } catch {
      reply = null;
    }
    if (!reply || reply.status !== true) {
      const why = (reply && reply.error) || "no answer";
      throw new Refused("gateway_unreachable", `Your node could not reach the gateway at ${this.base} (${why}).`);
    }
    try {
      const relayed = JSON.parse(reply.response);
      return { status: relayed.status, body: relayed.body === undefined ? null : relayed.body };
    } catch {
      throw new Refused("gateway_unreachable", `The gateway at ${this.base} answered, but not like an MNS gateway.`);
    }
  }
}

export class Gateway {
  /** `transport`: a FetchTransport or an MdsNetTransport (a string is a FetchTransport's base, as before). */
  constructor(transport = new FetchTransport("")) {
    this.transport = typeof transport === "string" ? new FetchTransport(transport) : transport;
  }

  describe() {
    return this.transport.describe();
  }

  async request(method, path, options = {}) {
    const { status, body } = await this.transport.exchange(method, path, options);
    if (status === 204) return null;
    if (status >= 200 && status < 300 && body !== null) return body;
    if (body && typeof body.error === "string") {
      const refused = new Refused(body.error, inWords(body.error, body.detail));
      refused.status = status;
      throw refused;
    }
    throw new Refused("gateway_unreachable", `The gateway answered with an error (HTTP ${status}).`);
  }

  wellKnown() {
    return this.request("GET", "/.well-known/mns.json");
  }

  name(name) {
    return this.request("GET", API + "names/" + encodeURIComponent(name));
  }

  ownedNames(owner) {
    return this.request("GET", API + "names?owner=" + encodeURIComponent(owner));
  }

  history(name) {
    return this.request("GET", API + "names/" + encodeURIComponent(name) + "/history");
  }

  register(body) {
    return this.request("POST", API + "mailboxes", { json: body });
  }

  challenge(body) {
    return this.request("POST", API + "handshakes", { json: body });
  }

  challengeState(id) {
    return this.request("GET", API + "handshakes/" + encodeURIComponent(id));
  }

  pickup(id, verifier) {
    return this.request("POST", API + "handshakes/" + encodeURIComponent(id) + "/session", { json: { verifier } });
  }

  /** The receipt the gateway queued for `sender`'s delivery `id` (404 receipt_not_found until there is one). */
  receipt(id, sender) {
    return this.request("GET", API + "receipts/" + encodeURIComponent(id) + "?sender=" + encodeURIComponent(sender));
  }

  owner(method, name, rest, session, json) {
    const path = API + "mailboxes/" + encodeURIComponent(name) + rest;
    return this.request(method, path, { json, auth: `MNS-Session ${session}` });
  }

  /** Revoke a session when done (best effort: it expires anyway). */
  endSession(session) {
    return this.request("DELETE", API + "session", { auth: `MNS-Session ${session}` }).catch(() => null);
  }
}
