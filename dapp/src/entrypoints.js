// Choosing the gateway from the entry points on chain, read through the user's own node, as `mns entry-points`
// does (docs/protocol.md "Entry points"; the Python reference is mns_client/protocol/entrypoints.py): the newest
// acceptable bulletin coin of the publisher's token, then one entry at random. The publisher's token and owner key
// come from a gateway's /.well-known/mns.json (trust on first use) and are kept in the Dapp's settings.

import { fromHex, isPublicKeyHex, Refused, utf8Text } from "./mns.js";
import { checkLookup, FAILURES, parseSignedRoot } from "./transparency.js";

export const BULLETIN_SCRIPT =
  "ASSERT SAMESTATE(0 0) ASSERT SIGNEDBY(PREVSTATE(0)) RETURN VERIFYOUT(@INPUT @ADDRESS @AMOUNT @TOKENID TRUE)";
const MAX_ENTRIES = 32;
const MAX_BULLETIN_BYTES = 16 * 1024;
const MAX_API_URL = 300;

/** A coin's state as {port: value}, from `coins` ([{port,type,data}]) or `simplestate` ({"port": value}). */
export function coinState(coin) {
  const state = coin && coin.state;
  const out = {};
  if (Array.isArray(state)) for (const item of state) out[Number(item.port)] = String(item.data);
  else if (state && typeof state === "object") for (const [port, value] of Object.entries(state)) out[Number(port)] = String(value);
  return out;
}

/** The gateway's base URL of an entry's `api_url` (published as `https://host/api/v1/` or `https://host`). */
export function apiBase(apiUrl) {
  return apiUrl.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
}

function entryOf(raw) {
  if (!raw || typeof raw !== "object") return null;
  const { maxima_address: address, identity_key: key, api_url: url } = raw;
  if (typeof address !== "string" || !address.startsWith(`MAX#${key}#`)) return null; // a permanent address of this key
  if (!isPublicKeyHex(key)) return null;
  if (typeof url !== "string" || url.length > MAX_API_URL || !/^https?:\/\/[^\s/]+/.test(url)) return null;
  return { maxima_address: address, identity_key: key, api_url: url };
}

/** The bulletin a coin carries, or null (with `why`) when it is not an acceptable one of this publisher. */
export function bulletinOfCoin(coin, { address, tokenid, owner }) {
  const upper = (text) => String(text || "").toUpperCase();
  if (upper(coin.address) !== upper(address)) return { why: "wrong_address" };
  if (upper(coin.tokenid) !== upper(tokenid)) return { why: "wrong_token" };
  if (coin.spent === true) return { why: "spent" };
  const state = coinState(coin);
  if (upper(state[0]) !== upper(owner)) return { why: "wrong_owner" };
  let list;
  try {
    const bytes = fromHex(state[1] || "");
    if (bytes.length > MAX_BULLETIN_BYTES) return { why: "unparsable" };
    list = JSON.parse(utf8Text(bytes));
  } catch {
    return { why: "unparsable" };
  }
  if (!list || list.v !== 1 || !Number.isSafeInteger(list.seq) || list.seq < 1 || !Array.isArray(list.entries)) {
    return { why: "unparsable" };
  }
  if (list.entries.length > MAX_ENTRIES || state[2] !== String(list.seq)) return { why: "unparsable" };
  // The directory's signed root (docs/protocol.md "Transparency"), optional; a malformed one spoils the bulletin.
  let root = null;
  if ("root" in list) {
    try {
      root = parseSignedRoot(list.root);
    } catch {
      return { why: "unparsable" };
    }
  }
  return { bulletin: { seq: list.seq, entries: list.entries.map(entryOf).filter(Boolean), root } };
}

/** The highest-seq acceptable bulletin among `coins`, not below `minSeq`, or null. */
export function newestBulletin(coins, config, minSeq = 0) {
  let best = null;
  for (const coin of coins || []) {
    const { bulletin } = bulletinOfCoin(coin, config);
    if (bulletin && bulletin.seq >= minSeq && (!best || bulletin.seq > best.seq)) best = bulletin;
  }
  return best;
}

/** The entry-point configuration a gateway publishes in /.well-known/mns.json, or null. */
export function chainConfigOf(wellKnown) {
  const raw = wellKnown && wellKnown.entry_points;
  if (!raw || typeof raw.tokenid !== "string" || typeof raw.owner !== "string") return null;
  if (!/^0x[0-9A-Fa-f]+$/.test(raw.tokenid) || !/^0x[0-9A-Fa-f]+$/.test(raw.owner)) return null;
  return { tokenid: raw.tokenid.toUpperCase().replace(/^0X/, "0x"), owner: raw.owner.toUpperCase().replace(/^0X/, "0x") };
}

/** The newest acceptable bulletin `{seq, entries, root}` the node sees (`read_from_node`), or null. */
export async function readBulletin(node, config, minSeq = 0) {
  const script = await node.command(`newscript trackall:true script:"${BULLETIN_SCRIPT}"`);
  const address = script.address;
  const coins = await node.command(`coins address:${address} tokenid:${config.tokenid}`);
  return newestBulletin(coins, { address, tokenid: config.tokenid, owner: config.owner }, minSeq);
}

/** Read the bulletin through `node` (a Node of node.js) and pick an entry at random: `{base, entry, seq}`. */
export async function chooseGateway(node, config, { minSeq = 0, random = Math.random } = {}) {
  const bulletin = await readBulletin(node, config, minSeq);
  if (!bulletin || bulletin.entries.length === 0) {
    throw new Refused("no_entry_points", "Your node sees no list of MNS gateways on chain yet.");
  }
  const entry = bulletin.entries[Math.floor(random() * bulletin.entries.length)];
  return { base: apiBase(entry.api_url), entry, seq: bulletin.seq };
}

function unchecked(detail) {
  return { status: "no_node", detail, failed: false, reason: null, root: null, signers: [], listed: 0, seq: null };
}

/**
 * What `mns whois` checks, for the Dapp: a lookup's answer `body` for `name` (its binding already verified) against
 * the directory root of the newest bulletin `node` reads on chain (docs/protocol.md "Transparency"). `history()`
 * gives the name's signed statements (asked only when the name changed hands since the cut-off). The outcome of
 * `checkLookup`, plus `bulletin` (the seq read); `no_node` when the chain cannot be read.
 */
export async function checkName({ node, config, name, body, minSeq = 0, history = null }) {
  if (!node) return unchecked("not checked: connect your node to read the directory root on chain");
  if (!config) return unchecked("not checked: the gateway does not say where the entry-point bulletin is");
  let bulletin;
  try {
    bulletin = await readBulletin(node, config, minSeq);
  } catch (error) {
    return unchecked(`not checked: the chain could not be read through your node (${error.message})`);
  }
  const outcome = await checkLookup({
    name,
    current: { statement: body.statement, signature: body.signature },
    answer: body.transparency,
    chainRoot: bulletin ? bulletin.root : null,
    between: history,
  });
  return { ...outcome, failed: FAILURES.has(outcome.status), bulletin: bulletin ? bulletin.seq : null };
}
