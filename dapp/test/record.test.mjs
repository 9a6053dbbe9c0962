// The Dapp's own statements for the name record (data, transfer, accept) against the shared vectors: built from
// the vector before them, they are the next vector byte for byte.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as mns from "../src/mns.js";

const vectors = JSON.parse(readFileSync(new URL("../../docs/vectors/statements.json", import.meta.url), "utf8")).vectors;
const [registered, offered, accepted] = vectors.slice(4, 7).map((vector) => vector.statement);
const bytes = (statement) => mns.toHex(mns.statementCanonical(statement));

test("an offer built from the registered record is vector 6, byte for byte", () => {
  const built = mns.transferStatement(registered, offered.to, offered.expires_at, offered.issued_at);
  assert.equal(bytes(built), vectors[5].canonical_hex);
});

test("an acceptance built from the offer is vector 7, byte for byte", () => {
  const built = mns.acceptStatement(
    offered,
    { owner: accepted.owner, boxKey: accepted.box_key, gateway: accepted.gateway, data: accepted.data },
    accepted.issued_at,
  );
  assert.equal(bytes(built), vectors[6].canonical_hex);
});

test("an acceptance is refused for another key and after the deadline", () => {
  const mine = { owner: registered.owner, boxKey: accepted.box_key, gateway: accepted.gateway };
  assert.throws(() => mns.acceptStatement(offered, mine, accepted.issued_at), { code: "transfer_not_pending" });
  const theirs = { ...mine, owner: accepted.owner };
  assert.throws(() => mns.acceptStatement(registered, theirs, accepted.issued_at), { code: "transfer_not_pending" });
  assert.throws(() => mns.acceptStatement(offered, theirs, offered.expires_at + 1), { code: "transfer_expired" });
});

test("an update after an offer keeps the binding, withdraws the offer and can clear the data", () => {
  const update = mns.ownerStatement(offered, "update", { data: undefined }, offered.issued_at + 1);
  assert.deepEqual(Object.keys(update).sort(), ["box_key", "gateway", "issued_at", "name", "op", "owner", "seq", "v"]);
  assert.equal(update.seq, offered.seq + 1);
  const withData = mns.ownerStatement(registered, "update", { data: { website: "https://x.example/" } }, 1);
  assert.deepEqual(withData.data, { website: "https://x.example/" });
});

test("typed data is one JSON object within the bounds, or a refusal in words", () => {
  assert.deepEqual(mns.parseData('{"website": "https://carol.example/"}'), { website: "https://carol.example/" });
  assert.equal(mns.parseData("  "), undefined);
  assert.throws(() => mns.parseData("{not json"), { code: "data_invalid" });
  assert.throws(() => mns.parseData("[1]"), { code: "data_invalid" });
  assert.throws(() => mns.parseData(JSON.stringify({ blob: "x".repeat(1100) })), /at most 1024/);
});
