// The page's side of service.js: the gateway's answers that reached the user's node over Maxima, as the MiniDapp's
// service keeps them in its SQL table (kind, ref, sender, body as hex of the JSON). Only rows from `from` (the
// gateway's keys, verified by the node: its identity key and those of its pool, /.well-known/mns.json
// `maxima.pool`, whose nodes send replies too) count: anyone can send a Maxima message to a node.

import { fromHex, utf8Text } from "./mns.js";

const REF = /^[A-Za-z0-9_-]{1,128}$/;
const KINDS = ["receipt", "handshake-result", "register-challenge", "register-refused"];

/** The message the service kept of `kind` about `ref` from a key of `from` (one key or a list; a receipt:
 * `stored` wins over a refusal). */
export async function latestFromService(mds, kind, ref, from) {
  const keys = [from].flat();
  if (!KINDS.includes(kind) || !REF.test(ref) || !keys.length) return null;
  if (!keys.every((key) => typeof key === "string" && /^0x[0-9A-Fa-f]+$/.test(key))) return null;
  const senders = keys.map((key) => `'0x${key.slice(2).toUpperCase()}'`);
  const sender = senders.length === 1 ? `sender=${senders[0]}` : `sender IN (${senders.join(", ")})`;
  const reply = await mds.sql(
    `SELECT body FROM mnsevents WHERE kind='${kind}' AND ref='${ref}' AND ${sender} ORDER BY received DESC`,
  );
  if (!reply || reply.status !== true) return null;
  const messages = (reply.rows || []).map((row) => JSON.parse(utf8Text(fromHex(row.BODY ?? row.body))));
  return messages.find((m) => m.status === "stored") || messages[0] || null;
}
