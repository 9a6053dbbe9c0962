// The MNS wire formats in JavaScript, byte for byte those of the Python core (mns_client/: codecs, statements,
// envelope, handshake, mailbox; docs/protocol.md). No DOM and no I/O here: the browser app and the Node tests
// (node --test, reading docs/vectors/) both import this module. `sodium` (libsodium-wrappers) is passed in by the
// caller once it is ready; RSA signatures are checked with WebCrypto (globalThis.crypto.subtle).

export const SCHEME_NACL = "nacl-sealedbox-v1";
export const SCHEME_RSA = "maxima-rsa-v1";
export const SCHEMES = [SCHEME_NACL, SCHEME_RSA];
export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER; // 2^53 - 1, the protocol's integer bound
const SIGNATURE_LENGTH = 128;
const BOX_KEY_LENGTH = 32;
const RSA_SPKI_PREFIX = "0x30819F300D06092A864886F70D010101050003818D0030818902818100";
const RSA_SPKI_LENGTH = 162;
const NAME_RE = /^[a-z0-9]+([-_][a-z0-9]+)*$/;
const DELIVERY_ID_RE = /^[A-Za-z0-9_-]{16,64}$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const LETTER_REQUIRED = ["v", "type", "id", "from", "to", "sent_at"];
const LETTER_FIELDS = new Set([...LETTER_REQUIRED, "from_name", "subject", "body", "body_b64"]);
const STATEMENT_REQUIRED = ["v", "op", "name", "owner", "seq", "issued_at", "gateway"];
const STATEMENT_FIELDS = new Set([
  ...STATEMENT_REQUIRED,
  "box_key",
  "payment_address",
  "data",
  "to",
  "expires_at",
  "accepts",
]);
export const STATEMENT_OPS = ["register", "update", "release", "transfer", "accept"];
const OP_FIELDS = { transfer: ["to", "expires_at"], accept: ["accepts"] };
export const TRANSFER_MAX_MS = 30 * 24 * 3600 * 1000;
export const DATA_MAX_BYTES = 1024;
const DATA_MAX_DEPTH = 4;
const DATA_MAX_KEYS = 32;
const DATA_KEY_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
// eslint-disable-next-line no-control-regex
const DATA_CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** A refusal with the protocol's code (`envelope_invalid`, `signature_invalid`, ...) and a message for people. */
export class Refused extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// ------------------------------------------------------------------------------------------------ bytes, hex

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

export function utf8(text) {
  return encoder.encode(text);
}

/** UTF-8 bytes as text, or null when they are not valid UTF-8. */
export function utf8Text(bytes) {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return null;
  }
}

/** "0x" + upper-case hex, as nodes write it. */
export function toHex(bytes) {
  let out = "0x";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0").toUpperCase();
  return out;
}

/** Strict: 0x or 0X and an even number of hex digits. */
export function fromHex(text) {
  if (typeof text !== "string" || !/^0[xX](?:[0-9A-Fa-f]{2})*$/.test(text)) {
    throw new Refused("hex_invalid", "expected 0x followed by an even number of hex digits");
  }
  const out = new Uint8Array((text.length - 2) / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 + 2 * i, 2), 16);
  return out;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function base64(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

export function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function base64url(bytes) {
  return base64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

export async function sha256Hex(text) {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", utf8(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------------------------------- canonical JSON

/** The JSON text of `value` with every object's keys in code-unit order, written out by hand: a JS object would put
 * integer-like keys ("9", "10") first in numeric order whatever order they were added in. */
function sortedJson(value) {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${sortedJson(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) as UTF-8 bytes. */
export function canonicalJson(value) {
  return utf8(sortedJson(value));
}

function hasLoneSurrogate(text) {
  return /(?:[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF])/.test(text);
}

// --------------------------------------------------------------------------------------------- keys, names

/** Whether `text` is how the protocol spells a Maxima identity key: 0x + upper-case hex of the RSA-1024 SPKI DER. */
export function isPublicKeyHex(text) {
  return (
    typeof text === "string" &&
    text.length === 2 + 2 * RSA_SPKI_LENGTH &&
    text.startsWith(RSA_SPKI_PREFIX) &&
    /^0x[0-9A-F]+$/.test(text)
  );
}

/** A name in normal form: what `mns_client.protocol.names.normalise` leaves unchanged (1-32 of [a-z0-9] with - and _). */
export function isNormalName(text) {
  return typeof text === "string" && text.length >= 1 && text.length <= 32 && NAME_RE.test(text);
}

/** What a user typed, as a name: NFKC and case folding (toLowerCase is enough for what NAME_RE admits). */
export function normaliseName(typed) {
  const name = String(typed).trim().normalize("NFKC").toLowerCase();
  if (!name) throw new Refused("name_empty", "Please type a name.");
  if (name.length > 32) throw new Refused("name_too_long", "A name has at most 32 characters.");
  if (!NAME_RE.test(name)) {
    throw new Refused(
      "name_invalid",
      "A name uses only letters a-z, digits, and single - or _ between them (like bob-smith_42).",
    );
  }
  return name;
}

const verifyKeys = new Map();

/** SHA256withRSA (PKCS#1 v1.5) over `data` by the key `publicKeyHex` (the SPKI DER in hex), with WebCrypto. */
export async function rsaVerify(publicKeyHex, data, signature) {
  let key = verifyKeys.get(publicKeyHex);
  if (!key) {
    key = await globalThis.crypto.subtle.importKey(
      "spki",
      fromHex(publicKeyHex),
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      false,
      ["verify"],
    );
    verifyKeys.set(publicKeyHex, key);
  }
  return globalThis.crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, signature, data);
}

// ------------------------------------------------------------------------------------------- name statements

function statementInvalid(field, problem) {
  return new Refused("statement_invalid", `${field}: ${problem}`);
}

function checkSafeInt(field, value, low) {
  if (typeof value !== "number" || !Number.isInteger(value)) throw statementInvalid(field, "must be an integer");
  if (value < low || value > MAX_SAFE_INTEGER) throw statementInvalid(field, `must be between ${low} and 2^53-1`);
}

function checkHexBytes(field, value, length) {
  let raw;
  try {
    raw = fromHex(value);
  } catch {
    throw statementInvalid(field, `must be 0x followed by the hex of ${length} bytes`);
  }
  if (raw.length !== length) throw statementInvalid(field, `must be ${length} bytes`);
  if (toHex(raw) !== value) throw statementInvalid(field, "must be written as 0x followed by upper-case hex");
}

/** Check a statement's fields the way `NameStatement.from_dict` does (Mx payment addresses: shape only). */
export function checkStatement(statement) {
  if (statement === null || typeof statement !== "object" || Array.isArray(statement)) {
    throw new Refused("statement_invalid", "a statement must be a JSON object");
  }
  for (const key of Object.keys(statement)) {
    if (!STATEMENT_FIELDS.has(key)) throw new Refused("statement_invalid", `unknown field ${key.slice(0, 40)}`);
    if (statement[key] === null) throw statementInvalid(key, "must be omitted rather than null");
  }
  for (const key of STATEMENT_REQUIRED) if (!(key in statement)) throw statementInvalid(key, "is missing");
  if (statement.v !== 1) throw statementInvalid("v", "must be 1");
  if (!STATEMENT_OPS.includes(statement.op)) throw statementInvalid("op", "unknown op");
  if (!isNormalName(statement.name)) throw statementInvalid("name", "must be a name in normal form");
  for (const field of ["owner", "gateway"]) {
    if (!isPublicKeyHex(statement[field])) throw statementInvalid(field, "must be 0x + upper-case hex of an RSA key");
  }
  checkSafeInt("seq", statement.seq, 1);
  checkSafeInt("issued_at", statement.issued_at, 0);
  checkOpFields(statement);
  if (statement.op === "release") {
    for (const absent of ["box_key", "payment_address", "data"]) {
      if (absent in statement) throw statementInvalid(absent, "must be omitted from a release");
    }
    return statement;
  }
  if (!("box_key" in statement)) throw statementInvalid("box_key", `is required for ${statement.op}`);
  checkHexBytes("box_key", statement.box_key, BOX_KEY_LENGTH);
  if ("payment_address" in statement) {
    const address = statement.payment_address;
    if (typeof address !== "string") throw statementInvalid("payment_address", "must be a string");
    if (address.startsWith("Mx")) {
      if (!/^Mx[0-9A-Z]+$/.test(address)) throw statementInvalid("payment_address", "is not a valid Mx address");
    } else {
      checkHexBytes("payment_address", address, 32);
    }
  }
  if ("data" in statement) checkData(statement.data);
  return statement;
}

/** `to`/`expires_at` only in a transfer, `accepts` only in an accept, and required there. */
function checkOpFields(statement) {
  for (const [op, names] of Object.entries(OP_FIELDS)) {
    for (const name of names) {
      if (statement.op === op && !(name in statement)) throw statementInvalid(name, `is required for ${op}`);
      if (statement.op !== op && name in statement) throw statementInvalid(name, `belongs to ${op} only`);
    }
  }
  if (statement.op === "transfer") {
    if (!isPublicKeyHex(statement.to)) throw statementInvalid("to", "must be 0x + upper-case hex of an RSA key");
    if (statement.to === statement.owner) throw statementInvalid("to", "must be another key than the owner's");
    checkSafeInt("expires_at", statement.expires_at, 0);
    const { issued_at: issued, expires_at: expires } = statement;
    if (!(issued < expires && expires <= issued + TRANSFER_MAX_MS)) {
      throw statementInvalid("expires_at", "must be after issued_at, by at most 30 days");
    }
  }
  if (statement.op === "accept") {
    checkSafeInt("accepts", statement.accepts, 1);
    if (statement.accepts >= statement.seq) {
      throw statementInvalid("accepts", "must be the seq of an earlier statement (the offer)");
    }
  }
}

/**
 * A name's data record as the protocol admits it (`check_data` in statements.py): a non-empty object of at most
 * 1024 canonical bytes, 4 levels, 32 keys in all; keys of [A-Za-z0-9_.:-]; strings, safe integers, booleans,
 * arrays and objects only (no null, no fractions, no control characters or lone surrogates).
 */
export function checkData(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data) || Object.keys(data).length === 0) {
    throw statementInvalid("data", "must be a non-empty JSON object (leave data out for none)");
  }
  const keys = checkDataValue(data, 1);
  if (keys > DATA_MAX_KEYS) throw statementInvalid("data", `has ${keys} keys; at most ${DATA_MAX_KEYS}`);
  const size = canonicalJson(data).length;
  if (size > DATA_MAX_BYTES) {
    throw statementInvalid("data", `is ${size} bytes in canonical JSON; at most ${DATA_MAX_BYTES}`);
  }
  return data;
}

function checkDataValue(value, depth) {
  if (typeof value === "string") {
    if (DATA_CONTROL_RE.test(value) || hasLoneSurrogate(value)) {
      throw statementInvalid("data", "strings must not hold control characters or lone surrogates");
    }
    return 0;
  }
  if (typeof value === "boolean") return 0;
  if (typeof value === "number") {
    if (!Number.isInteger(value)) {
      throw statementInvalid("data", "values are strings, integers, booleans, arrays and objects (no fractions)");
    }
    if (Math.abs(value) > MAX_SAFE_INTEGER) throw statementInvalid("data", "integers must be within ±(2^53-1)");
    return 0;
  }
  if (value === null) throw statementInvalid("data", "must not hold null: leave the key out");
  if (typeof value !== "object") {
    throw statementInvalid("data", "values are strings, integers, booleans, arrays and objects");
  }
  if (depth > DATA_MAX_DEPTH) throw statementInvalid("data", `is nested deeper than ${DATA_MAX_DEPTH} levels`);
  if (Array.isArray(value)) return value.reduce((sum, item) => sum + checkDataValue(item, depth + 1), 0);
  let keys = 0;
  for (const [key, item] of Object.entries(value)) {
    if (!DATA_KEY_RE.test(key)) throw statementInvalid("data", "keys are 1 to 64 characters of A-Z a-z 0-9 _ . : -");
    keys += 1 + checkDataValue(item, depth + 1);
  }
  return keys;
}

const DAY_MS = 24 * 3600 * 1000;
export const TRANSFER_DAYS = 7;

/**
 * The owner's next statement after `current` (the name's current statement, verified): the binding as it stands
 * (box key, payment address, data, gateway; never a pending offer's fields), with `changes` on top. A change to
 * `undefined` removes that field (`{data: undefined}` clears the data record). Checked before it is returned.
 */
export function ownerStatement(current, op, changes = {}, issuedAt = Date.now()) {
  const { to, expires_at: expiresAt, accepts, ...binding } = current;
  const statement = { ...binding, op, seq: current.seq + 1, issued_at: issuedAt, ...changes };
  for (const key of Object.keys(statement)) if (statement[key] === undefined) delete statement[key];
  return checkStatement(statement);
}

/** The owner's offer of the name to the key `to`, open until `expiresAt` (Unix ms, at most 30 days on). */
export function transferStatement(current, to, expiresAt, issuedAt = Date.now()) {
  return ownerStatement(current, "transfer", { to, expires_at: expiresAt }, issuedAt);
}

/** When a name offered for `days` from `issuedAt` stops being open. */
export function offerDeadline(days, issuedAt = Date.now()) {
  return issuedAt + days * DAY_MS;
}

/**
 * The new key's acceptance of the offer `current` (the name's current statement): its own box key, gateway and,
 * if given, payment address and data; nothing of the old owner's. Refused unless the offer is to `owner` and open.
 */
export function acceptStatement(current, { owner, boxKey, gateway, paymentAddress, data }, issuedAt = Date.now()) {
  if (current.op !== "transfer" || current.to !== owner) {
    throw new Refused("transfer_not_pending", `No transfer of ${current.name} to your node is pending.`);
  }
  if (issuedAt > current.expires_at) throw new Refused("transfer_expired", `The offer of ${current.name} expired.`);
  const statement = {
    v: 1,
    op: "accept",
    name: current.name,
    owner,
    box_key: boxKey,
    payment_address: paymentAddress,
    data,
    accepts: current.seq,
    seq: current.seq + 1,
    issued_at: issuedAt,
    gateway,
  };
  for (const key of Object.keys(statement)) if (statement[key] === undefined) delete statement[key];
  return checkStatement(statement);
}

/** A data record as a user typed it: one JSON object within the protocol's bounds (empty text: no record). */
export function parseData(text) {
  if (!String(text).trim()) return undefined;
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Refused("data_invalid", "The data record is not valid JSON.");
  }
  try {
    return checkData(data);
  } catch (error) {
    throw new Refused("data_invalid", `The data record is refused: ${error.message.replace(/^data: /, "")}.`);
  }
}

/** The bytes the owner signs: the canonical JSON of the statement's present fields. */
export function statementCanonical(statement) {
  return canonicalJson(statement);
}

/** Verify a signed statement `{statement, signature}` with its own owner key; throws `Refused` otherwise. */
export async function verifyStatement(signed) {
  if (signed === null || typeof signed !== "object" || Object.keys(signed).sort().join() !== "signature,statement") {
    throw new Refused("statement_invalid", "a signed statement has exactly: statement, signature");
  }
  checkStatement(signed.statement);
  checkHexBytes("signature", signed.signature, SIGNATURE_LENGTH);
  const ok = await rsaVerify(signed.statement.owner, statementCanonical(signed.statement), fromHex(signed.signature));
  if (!ok) throw new Refused("signature_invalid", "the signature does not match the statement and its owner key");
  return signed.statement;
}

/**
 * A name record from `GET /api/v1/names/{name}`, used only if its binding verifies and its fields are the signed
 * statement's (the SDK's `_verified_record`). Returns {name, owner, box_key, payment_address, data, transfer, seq,
 * gateways}; `transfer` is the pending offer ({to, expires_at, offer}) when the current statement is one.
 */
export async function verifiedRecord(name, body) {
  let statement;
  try {
    statement = checkStatement(body.statement);
    checkHexBytes("signature", body.signature, SIGNATURE_LENGTH);
  } catch {
    throw new Refused("record_invalid", `The gateway's record of ${name} has no valid signed statement.`);
  }
  try {
    await verifyStatement({ statement: body.statement, signature: body.signature });
  } catch {
    throw new Refused("signature_invalid", `The binding of ${name} does NOT verify: it was not signed by its owner.`);
  }
  const claimed = [body.name, body.owner, body.box_key ?? null, body.payment_address ?? null, body.seq];
  const signedFields = [
    statement.name,
    statement.owner,
    statement.box_key ?? null,
    statement.payment_address ?? null,
    statement.seq,
  ];
  if (statement.name !== name || statement.op === "release" || claimed.some((v, i) => v !== signedFields[i])) {
    throw new Refused("record_mismatch", `The gateway's record of ${name} differs from what its owner signed.`);
  }
  return {
    name: statement.name,
    owner: statement.owner,
    box_key: statement.box_key,
    payment_address: statement.payment_address ?? null,
    data: statement.data ?? null,
    transfer:
      statement.op === "transfer"
        ? { to: statement.to, expires_at: statement.expires_at, offer: statement.seq }
        : null,
    seq: statement.seq,
    gateway: statement.gateway,
    status: String(body.status || ""),
    gateways: Array.isArray(body.gateways) ? body.gateways : [],
  };
}

// ---------------------------------------------------------------------------------------------------- letters

function letterInvalid(field, problem) {
  return new Refused("envelope_invalid", `${field}: ${problem}`);
}

function checkText(field, value) {
  if (typeof value !== "string") throw letterInvalid(field, "must be a string");
  if (hasLoneSurrogate(value)) throw letterInvalid(field, "must not contain lone surrogates");
  return value;
}

/** Check a letter's fields the way `Letter.from_dict` does; returns the letter. */
export function checkLetter(letter) {
  if (letter === null || typeof letter !== "object" || Array.isArray(letter)) {
    throw letterInvalid("letter", "must be a JSON object");
  }
  for (const key of Object.keys(letter)) {
    if (!LETTER_FIELDS.has(key)) throw letterInvalid(key.slice(0, 40), "unknown field");
  }
  for (const key of LETTER_REQUIRED) if (!(key in letter)) throw letterInvalid(key, "is missing");
  for (const [key, value] of Object.entries(letter)) {
    if (value === null) throw letterInvalid(key, "must be omitted rather than null");
  }
  if (letter.v !== 1) throw letterInvalid("v", "must be 1");
  if (letter.type !== "letter") throw letterInvalid("type", 'must be "letter"');
  if (typeof letter.id !== "string" || !DELIVERY_ID_RE.test(letter.id)) {
    throw letterInvalid("id", "must be 16 to 64 characters of A-Z a-z 0-9 _ -");
  }
  if (!isPublicKeyHex(checkText("from", letter.from))) {
    throw letterInvalid("from", "must be 0x followed by the upper-case hex of an RSA-1024 public key");
  }
  if (!isNormalName(checkText("to", letter.to))) throw letterInvalid("to", "must be a name in normal form");
  if ("from_name" in letter && !isNormalName(checkText("from_name", letter.from_name))) {
    throw letterInvalid("from_name", "must be a name in normal form");
  }
  if (typeof letter.sent_at !== "number" || !Number.isInteger(letter.sent_at)) {
    throw letterInvalid("sent_at", "must be an integer");
  }
  if (letter.sent_at < 0 || letter.sent_at > MAX_SAFE_INTEGER) throw letterInvalid("sent_at", "out of range");
  if ("subject" in letter) {
    const chars = [...checkText("subject", letter.subject)];
    if (chars.length < 1 || chars.length > 200) throw letterInvalid("subject", "must be 1 to 200 characters");
    if (/[\u0000-\u001f\u007f-\u009f]/.test(letter.subject)) {
      throw letterInvalid("subject", "must not contain control characters");
    }
  }
  if (("body" in letter) === ("body_b64" in letter)) {
    throw letterInvalid("body", "exactly one of body and body_b64 is present");
  }
  if ("body" in letter) {
    checkText("body", letter.body);
  } else {
    const text = checkText("body_b64", letter.body_b64);
    if (!B64_RE.test(text)) throw letterInvalid("body_b64", "must be standard base64 with padding");
    const raw = fromBase64(text);
    if (base64(raw) !== text) throw letterInvalid("body_b64", "must be canonical base64");
    if (utf8Text(raw) !== null) throw letterInvalid("body_b64", "UTF-8 text goes in body, not body_b64");
  }
  return letter;
}

/**
 * The first key written twice in one object of a valid JSON `text`, or null. `JSON.parse` keeps the last copy and
 * Python's the last too, but other readers keep the first: such a text has no one meaning, so it is refused, as
 * the Python core's `fields.loads` refuses it (docs/protocol.md, "One spelling, in every wire format").
 */
export function repeatedKey(text) {
  const open = []; // a Set of the keys seen for each open object, null for each open array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      const keys = open[open.length - 1];
      if (keys && expectKey) {
        const key = JSON.parse(text.slice(i, end + 1));
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (char === "{") {
      open.push(new Set());
      expectKey = true;
    } else if (char === "[") {
      open.push(null);
    } else if (char === "}" || char === "]") {
      open.pop();
      expectKey = false;
    } else if (char === ",") {
      expectKey = open[open.length - 1] instanceof Set;
    }
  }
  return null;
}

/** A letter for a body given as text (or bytes): `body` when UTF-8 text, else `body_b64`. Optional fields omitted. */
export function makeLetter({ id, from, to, sentAt, body, subject, fromName }) {
  const letter = { v: 1, type: "letter", id, from, to, sent_at: sentAt };
  if (fromName) letter.from_name = fromName;
  if (subject) letter.subject = subject;
  if (typeof body === "string") {
    letter.body = body;
  } else {
    const text = utf8Text(body);
    if (text !== null) letter.body = text;
    else letter.body_b64 = base64(body);
  }
  return checkLetter(letter);
}

export function letterCanonical(letter) {
  return canonicalJson(letter);
}

/** The plaintext that is encrypted: compact JSON with sorted keys of {letter, sig}. */
export function signedLetterBytes(letter, signature) {
  return canonicalJson({ letter, sig: toHex(signature) });
}

/**
 * Open a decrypted plaintext read from the mailbox `name`: parse, verify the sender's signature, check the
 * recipient, and (when the delivery's sender was verified by Maxima) that the signer is that sender.
 * Throws `Refused` with the protocol's code; returns the letter.
 */
export async function openLetter(plaintext, { name, deliverySender = null }) {
  const text = utf8Text(plaintext);
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Refused("envelope_invalid", "the plaintext is not a signed MNS letter (not JSON)");
  }
  if (data === null || typeof data !== "object" || Object.keys(data).sort().join() !== "letter,sig") {
    throw new Refused("envelope_invalid", "a signed letter has exactly: letter, sig");
  }
  const twice = repeatedKey(text);
  if (twice !== null) throw letterInvalid(twice.slice(0, 40), "is written twice");
  let signature;
  try {
    signature = fromHex(data.sig);
  } catch {
    signature = new Uint8Array(0);
  }
  if (signature.length !== SIGNATURE_LENGTH || toHex(signature) !== data.sig) {
    throw letterInvalid("sig", "must be 0x followed by the upper-case hex of 128 bytes");
  }
  const letter = checkLetter(data.letter);
  if (!(await rsaVerify(letter.from, letterCanonical(letter), signature))) {
    throw new Refused("envelope_signature_invalid", "the letter's signature does not match its sender key");
  }
  if (letter.to !== name) {
    throw new Refused("envelope_wrong_recipient", `the letter was written to ${letter.to}, not ${name}`);
  }
  if (deliverySender && deliverySender !== letter.from) {
    throw new Refused("envelope_sender_mismatch", "the letter was signed by another key than the one that sent it");
  }
  return letter;
}

// -------------------------------------------------------------------------------------------------- sealed boxes

/** A NaCl sealed box (crypto_box_seal) of `plaintext` to the 32-byte X25519 `boxPublic`. */
export function seal(sodium, boxPublic, plaintext) {
  return sodium.crypto_box_seal(plaintext, boxPublic);
}

/**
 * crypto_box_seal with a given ephemeral secret key, to reproduce test vectors byte for byte:
 * epk ‖ crypto_box(m, nonce = BLAKE2b-192(epk ‖ pk), pk, esk).
 */
export function sealWithEphemeral(sodium, boxPublic, plaintext, ephemeralPrivate) {
  const ephemeralPublic = sodium.crypto_scalarmult_base(ephemeralPrivate);
  const nonce = sodium.crypto_generichash(24, concat(ephemeralPublic, boxPublic));
  return concat(ephemeralPublic, sodium.crypto_box_easy(plaintext, nonce, boxPublic, ephemeralPrivate));
}

/** Open a sealed box with any of the box private keys (newest first); throws `envelope_undecryptable`. */
export function unseal(sodium, boxPrivates, ciphertext) {
  for (const privateKey of boxPrivates) {
    try {
      return sodium.crypto_box_seal_open(ciphertext, sodium.crypto_scalarmult_base(privateKey), privateKey);
    } catch {
      // not this key
    }
  }
  throw new Refused("envelope_undecryptable", "none of your box keys opens this message");
}

// -------------------------------------------------------------------------------------- handshake and messages

/** A fresh PKCE-style verifier: 32 random bytes as base64url without padding (43 characters). */
export function newVerifier() {
  return base64url(randomBytes(32));
}

/** What the gateway is given first: lower-case hex SHA-256 of the verifier's ASCII bytes. */
export function verifierHash(verifier) {
  if (!/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier)) throw new Refused("verifier_invalid", "bad verifier");
  return sha256Hex(verifier);
}

/** A fresh delivery id: 24 random bytes, base64url (32 characters), as `new_delivery_id`. */
export function newDeliveryId() {
  return base64url(randomBytes(24));
}

/** The handshake answer the owner's node sends: compact JSON in the Python key order. */
export function handshakeAnswer({ challenge, code, replyTo }) {
  const body = { v: 1, type: "handshake", challenge, code };
  if (replyTo) body.reply_to = replyTo;
  return utf8(JSON.stringify(body));
}

/**
 * The `deliver` message a sender's node sends to the gateway; `owner`: the owner key of the record the letter was
 * sealed for, so the gateway refuses it (`owner_changed`) if the name changed hands meanwhile.
 */
export function deliverMessage({ id, to, scheme, ciphertext, replyTo, owner }) {
  const body = { v: 1, type: "deliver", id, to, scheme, ciphertext: toHex(ciphertext) };
  if (replyTo) body.reply_to = replyTo;
  if (owner) body.owner = owner;
  return utf8(JSON.stringify(body));
}
