/* The MNS mail MiniDapp's background service, run by the user's node (MDS runs one service.js per MiniDapp, in its
 * own JavaScript engine: plain ES5, no modules, no browser APIs; MDS.cmd, MDS.sql, MDS.net and MDS.keypair answer
 * through synchronous callbacks). It does two things:
 *
 * 1. It keeps what the gateway tells the user's node over Maxima (application `mns`): delivery receipts, handshake
 *    verdicts and registration answers, in this MiniDapp's SQL table `mnsevents`, so the page reads them there
 *    instead of polling the gateway. Each row keeps the Maxima sender (verified by the node): the page trusts only
 *    rows from its gateway's identity key.
 * 2. It answers other MiniDapps' MDS.api requests in the request and reply shape of Minima's own MNS MiniDapp:
 *    {"action":"GET","data":"<name>"} -> {FOUND, LOCATION, OWNER, TRANSFER, NAME, DATA, DATAHEX, UPDATED}, looking
 *    the name up at the MiniDapp's gateway (the page keeps its address under the keypair key "gateway") and
 *    checking the owner's signature with the node's own `maxverify`. docs/protocol.md ("The MiniDapp") says how
 *    an MNS record maps into those fields.
 */

var TABLE = "mnsevents";
var KEPT_TYPES = { receipt: "id", "handshake-result": "challenge", "register-challenge": "name", "register-refused": "name" };
var REF = /^[A-Za-z0-9_-]{1,128}$/;
var MAX_BODY_HEX = 2 * 60000; // a batch of replies fills at most 60 000 bytes (docs/protocol.md, Batched replies)
var MAX_BATCH_ITEMS = 500;
var KEEP_MILLIS = 7 * 24 * 3600 * 1000;

function hexOfText(text) {
  var utf8 = unescape(encodeURIComponent(text));
  var out = "0x";
  for (var i = 0; i < utf8.length; i++) {
    var byte = utf8.charCodeAt(i).toString(16).toUpperCase();
    out += byte.length === 1 ? "0" + byte : byte;
  }
  return out;
}

function textOfHex(hex) {
  var digits = String(hex).replace(/^0x/i, "");
  if (digits.length % 2 !== 0 || /[^0-9A-Fa-f]/.test(digits)) throw new Error("not hex");
  return decodeURIComponent(digits.replace(/(..)/g, "%$1"));
}

function createTable() {
  MDS.sql(
    // SQL that both the node's H2 and simnet's SQLite take: no auto-increment column, rows ordered by `received`.
    "CREATE TABLE IF NOT EXISTS " + TABLE + " (kind VARCHAR(32) NOT NULL, ref VARCHAR(128) NOT NULL, " +
      "sender VARCHAR(400) NOT NULL, body CLOB NOT NULL, received BIGINT NOT NULL)"
  );
}

/** A Maxima message for this node: keep what the page waits for among the gateway's answers, sent alone or as the
 * items of a `batch` (docs/protocol.md, "Batched replies"); returns whether something was kept. */
function keepMaxima(data) {
  if (!data || data.application !== "mns" || typeof data.data !== "string") return false;
  if (data.data.length > MAX_BODY_HEX + 2 || !/^0x[0-9A-Fa-f]+$/i.test(String(data.from))) return false;
  var message;
  try {
    message = JSON.parse(textOfHex(data.data));
  } catch (e) {
    return false;
  }
  var sender = String(data.from).toUpperCase().replace(/^0X/, "0x");
  if (!message || message.v !== 1) return false;
  if (message.type !== "batch") return keepOne(message, sender);
  if (!(message.messages instanceof Array) || message.messages.length > MAX_BATCH_ITEMS) return false;
  var kept = false;
  for (var i = 0; i < message.messages.length; i++) kept = keepOne(message.messages[i], sender) || kept;
  return kept;
}

function keepOne(message, sender) {
  if (!message || message.v !== 1 || !KEPT_TYPES.hasOwnProperty(message.type)) return false;
  var ref = message[KEPT_TYPES[message.type]];
  if (typeof ref !== "string" || !REF.test(ref)) return false;
  // Every value is hex or checked above, so nothing in the statement can break out of its quotes.
  MDS.sql(
    "INSERT INTO " + TABLE + " (kind, ref, sender, body, received) VALUES ('" + message.type + "', '" + ref +
      "', '" + sender + "', '" + hexOfText(JSON.stringify(message)) + "', " + new Date().getTime() + ")"
  );
  return true;
}

function forget() {
  MDS.sql("DELETE FROM " + TABLE + " WHERE received < " + (new Date().getTime() - KEEP_MILLIS));
}

// ---------------------------------------------------------------------------------------- names for MiniDapps

/** The statement's canonical JSON (mns.js canonicalJson): every object's keys sorted, written out by hand. */
function canonical(value) {
  if (value instanceof Array) {
    var items = [];
    for (var j = 0; j < value.length; j++) items.push(canonical(value[j]));
    return "[" + items.join(",") + "]";
  }
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  var keys = [];
  for (var key in value) if (value.hasOwnProperty(key)) keys.push(key);
  keys.sort();
  var parts = [];
  for (var i = 0; i < keys.length; i++) parts.push(JSON.stringify(keys[i]) + ":" + canonical(value[keys[i]]));
  return "{" + parts.join(",") + "}";
}

function notFound(name) {
  return { FOUND: false, NAME: name };
}

function gatewayBase() {
  var base = null;
  MDS.keypair.get("gateway", function (reply) {
    if (reply && reply.status && /^https?:\/\/[^\s&]+$/.test(String(reply.value))) base = String(reply.value);
  });
  return base;
}

/** The owner's signature, checked by the node itself (maxverify: SHA256withRSA with the owner's identity key). */
function signatureValid(statement, signature) {
  if (!/^0x[0-9A-F]+$/.test(String(statement.owner)) || !/^0x[0-9A-F]+$/.test(String(signature))) return false;
  var valid = false;
  MDS.cmd(
    "maxverify data:" + hexOfText(canonical(statement)) + " publickey:" + statement.owner + " signature:" + signature,
    function (reply) {
      valid = !!(reply && reply.status === true && reply.response && reply.response.valid === true);
    }
  );
  return valid;
}

/** The record of `name` at the gateway, in the reply shape of Minima's MNS MiniDapp. */
function lookup(name) {
  name = String(name === undefined || name === null ? "" : name).trim();
  var base = gatewayBase();
  if (name === "" || base === null || name.length > 64) return notFound(name);
  var body = null;
  MDS.net.GET(base + "/api/v1/names/" + encodeURIComponent(name.toLowerCase()), function (reply) {
    // The node counts only HTTP 200: any other answer (404 name_not_found...) comes back as an empty body.
    if (reply && reply.status === true && reply.response) {
      try {
        body = JSON.parse(reply.response);
      } catch (e) {
        body = null;
      }
    }
  });
  if (!body || body.status !== "active" || !body.statement || typeof body.statement !== "object") return notFound(name);
  var statement = body.statement;
  if (statement.op === "release" || statement.name !== body.name || statement.owner !== body.owner) return notFound(name);
  if (!signatureValid(statement, body.signature)) {
    MDS.log("MNS: the gateway's record of " + statement.name + " does not verify: not answered");
    return notFound(name);
  }
  var data = { box_key: statement.box_key, gateway: statement.gateway, seq: statement.seq };
  if (statement.payment_address) data.address = statement.payment_address;
  if (body.gateways && body.gateways.length) data.maxima = String(body.gateways[0]);
  if (statement.data) data.record = statement.data; // the owner's own signed data record (a website, an address...)
  data.statement = statement;
  data.signature = body.signature;
  return {
    FOUND: true,
    LOCATION: "GATEWAY",
    OWNER: statement.owner,
    TRANSFER: statement.owner,
    NAME: statement.name,
    DATA: JSON.stringify(data),
    DATAHEX: "0x00",
    UPDATED: statement.seq,
  };
}

/** An MDSAPI request from another MiniDapp; like Minima's MNS, anything but GET is logged and not answered. */
function answerApi(data) {
  if (!data || data.request !== true) return;
  var call;
  try {
    call = JSON.parse(String(data.message).trim());
  } catch (e) {
    call = null;
  }
  if (!call || call.action !== "GET") {
    MDS.log("MNS: invalid API call from " + data.from);
    return;
  }
  MDS.api.reply(data.from, data.id, JSON.stringify(lookup(call.data)));
}

MDS.init(function (msg) {
  if (msg.event === "inited") {
    createTable();
  } else if (msg.event === "MAXIMA") {
    keepMaxima(msg.data);
  } else if (msg.event === "MDSAPI") {
    answerApi(msg.data);
  } else if (msg.event === "MDS_TIMER_1HOUR") {
    forget();
  }
});
