// The directory's Merkle tree and the Dapp's check of a lookup's proof, against docs/vectors/transparency.json (the
// file mns_client/tests/test_transparency_vectors.py checks in Python): every proof, broken proof and lookup answer.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { checkName } from "../src/entrypoints.js";
import * as mns from "../src/mns.js";
import * as t from "../src/transparency.js";

const data = JSON.parse(readFileSync(new URL("../../docs/vectors/transparency.json", import.meta.url), "utf8"));
const root = t.parseRoot(data.root);
const signedRoot = t.parseSignedRoot(data.signed_root);

/** RFC 9162 §2.1.1, recursively, written out here independently of the module under test. */
async function mth(leaves) {
  if (leaves.length === 0) return t.sha256(new Uint8Array(0));
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return t.nodeHash(await mth(leaves.slice(0, k)), await mth(leaves.slice(k)));
}

test("every entry's statement hash, leaf, bucket and proof are the vector's", async () => {
  for (const entry of data.entries) {
    const statement = await mns.verifyStatement(entry.signed);
    const value = await t.statementHash(statement);
    assert.equal(mns.toHex(value), entry.statement_hash, entry.name);
    assert.equal(mns.toHex(await t.leafHash(entry.name, value)), entry.leaf, entry.name);
    assert.equal(await t.bucketOf(entry.name), entry.bucket, entry.name);
    await t.checkInDirectory({ root, name: entry.name, statement, proof: entry.proof });
  }
});

test("the bucket roots and the root are the tree of the entries (buckets of 5, 3, 2, 1 and 1 leaves)", async () => {
  const buckets = new Map();
  const sorted = [...data.entries].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  for (const entry of sorted) {
    const leaf = mns.fromHex(entry.leaf);
    buckets.set(entry.bucket, [...(buckets.get(entry.bucket) || []), leaf]);
  }
  assert.deepEqual([...buckets.values()].map((leaves) => leaves.length).sort(), [1, 1, 2, 3, 5]);
  for (const [bucket, leaves] of buckets) assert.equal(mns.toHex(await mth(leaves)), data.bucket_roots[String(bucket)]);
  const empty = await t.sha256(new Uint8Array(0));
  assert.equal(mns.toHex(empty), data.empty_bucket_root);
  let level = [];
  for (let b = 0; b < t.BUCKETS; b++) level.push(buckets.has(b) ? await mth(buckets.get(b)) : empty);
  while (level.length > 1) {
    const up = [];
    for (let i = 0; i < level.length; i += 2) up.push(await t.nodeHash(level[i], level[i + 1]));
    level = up;
  }
  assert.equal(mns.toHex(level[0]), data.root.root);
  assert.equal(mns.utf8Text(t.rootCanonical(root)), data.root_canonical);
});

test("only the two gateways' signatures over the root count", async () => {
  assert.equal(signedRoot.signers.length, 3);
  assert.deepEqual(await t.verifiedSigners(signedRoot), data.verified_signers);
});

test("every broken proof is refused with its vector's code", async () => {
  for (const vector of data.invalid) {
    await assert.rejects(
      t.checkInDirectory({ root, name: vector.name, statement: vector.signed.statement, proof: vector.proof }),
      { code: vector.error },
      vector.description,
    );
  }
});

test("every proof of absence holds, or is refused with its vector's code", async () => {
  assert.ok(data.absent.length >= 8);
  for (const vector of data.absent) {
    const check = t.checkAbsent({ root, name: vector.name, absence: vector.bucket });
    if (vector.error === null) await check;
    else await assert.rejects(check, { code: vector.error }, vector.description);
  }
});

test("an absence whose entry is not UTF-8 text is refused as malformed, as Python refuses it", async () => {
  const honest = data.absent.find((vector) => vector.error === null && vector.bucket.entries.length > 0);
  const bucket = { ...honest.bucket, entries: [["\ud800", honest.bucket.entries[0][1]]] };
  await assert.rejects(t.checkAbsent({ root, name: honest.name, absence: bucket }), { code: "proof_invalid" });
});

test("every lookup answer reaches its vector's outcome", async () => {
  for (const vector of data.answers) {
    const outcome = await t.checkLookup({
      name: vector.name,
      current: vector.current,
      answer: vector.transparency,
      chainRoot: vector.root_on_chain ? signedRoot : null,
      between: async () => vector.history,
    });
    assert.deepEqual(
      [outcome.status, outcome.reason, outcome.failed],
      [vector.status, vector.reason, vector.failed],
      vector.description,
    );
  }
});

test("a malformed root in a bulletin is refused, as Python refuses it", () => {
  for (const bad of [
    { ...data.signed_root, root: "0x00" },
    { ...data.signed_root, v: 2 },
    { ...data.signed_root, size: -1 },
    { ...data.signed_root, extra: 1 },
    { ...data.signed_root, signers: [{ key: data.verified_signers[0], signature: "0x00" }] },
  ]) {
    assert.throws(() => t.parseSignedRoot(bad), { code: "root_invalid" });
  }
});

// ------------------------------------------------------------------------ through the node, as the name view does

const TOKEN = "0x6E1D60258832";
const OWNER = "0x0E914516BF0B";
const ADDRESS = "0x1DF1924BAB4F";

function nodeWith(bulletin) {
  const hex = "0x" + Buffer.from(JSON.stringify(bulletin)).toString("hex").toUpperCase();
  const coin = {
    coinid: "0x01",
    address: ADDRESS,
    tokenid: TOKEN,
    spent: false,
    state: [
      { port: 0, type: 1, data: OWNER },
      { port: 1, type: 1, data: hex },
      { port: 2, type: 1, data: String(bulletin.seq) },
    ],
  };
  return { command: async (line) => (line.startsWith("newscript") ? { address: ADDRESS } : [coin]) };
}

const honest = data.answers.find((a) => a.status === "in_directory");
const lying = data.answers.find((a) => a.status === "root_differs");
const body = (vector) => ({ ...vector.current, transparency: vector.transparency });
const config = { tokenid: TOKEN, owner: OWNER };
const withRoot = nodeWith({ v: 1, seq: 7, issued_at: 1, entries: [], root: data.signed_root });

test("the name view finds a name in the directory whose root its node reads on chain", async () => {
  const outcome = await checkName({ node: withRoot, config, name: honest.name, body: body(honest) });
  assert.equal(outcome.status, "in_directory");
  assert.equal(outcome.bulletin, 7);
  assert.deepEqual(outcome.signers, data.verified_signers);
  assert.match(outcome.detail, /^in the published directory \(root of 2026-11-26 \d\d:\d\d UTC, signed by 2 gateways\)$/);
});

test("the name view catches a gateway whose root is not the chain's", async () => {
  const outcome = await checkName({ node: withRoot, config, name: lying.name, body: body(lying) });
  assert.deepEqual([outcome.status, outcome.failed], ["root_differs", true]);
});

test("the name view says why it checked nothing: no node, no root on chain", async () => {
  const none = await checkName({ node: null, config, name: honest.name, body: body(honest) });
  assert.equal(none.status, "no_node");
  const broken = { command: async () => Promise.reject(new mns.Refused("node_unreachable", "no answer")) };
  const unreachable = await checkName({ node: broken, config, name: honest.name, body: body(honest) });
  assert.deepEqual([unreachable.status, unreachable.failed], ["no_node", false]);
  const bare = nodeWith({ v: 1, seq: 2, issued_at: 1, entries: [] });
  const noRoot = await checkName({ node: bare, config, name: honest.name, body: body(honest) });
  assert.equal(noRoot.status, "no_root");
});
