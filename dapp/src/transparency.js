// The directory's Merkle tree and what the Dapp checks of a lookup's proof against the root on chain
// (docs/protocol.md "Transparency"; the Python reference is mns_client/protocol/transparency.py for the tree and
// mns_client/protocol/lookup_proof.py for the outcomes; docs/vectors/transparency.json holds both to the same
// answers). SHA-256 is WebCrypto's (crypto.subtle: the /app/ page and MDS pages are secure contexts, https or
// localhost), as the RSA checks of mns.js are.

import {
  canonicalJson,
  concat,
  equalBytes,
  fromHex,
  isPublicKeyHex,
  MAX_SAFE_INTEGER,
  Refused,
  rsaVerify,
  statementCanonical,
  toHex,
  utf8,
  verifyStatement,
} from "./mns.js";

export const BUCKET_BITS = 12;
export const BUCKETS = 1 << BUCKET_BITS;
const HASH_BYTES = 32;
const SIGNATURE_BYTES = 128;
const MAX_PATH = 64;
const MAX_SIGNERS = 32;
// A proof of absence carries the name's whole bucket (about n/4096 entries); read at most this many.
export const MAX_BUCKET_ENTRIES = 16384;
export const MAX_HISTORY = 1000;

/** The outcomes that prove the gateway's answer wrong (a lying gateway, or a forged or broken proof). */
export const FAILURES = new Set(["root_differs", "proof_invalid", "statement_invalid", "not_current", "answer_invalid"]);

function proofInvalid(code, detail) {
  return new Refused(code, detail);
}

export async function sha256(bytes) {
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", bytes));
}

/** SHA-256 of the statement's canonical bytes (what its owner signed): the directory's value for a name. */
export function statementHash(statement) {
  return sha256(statementCanonical(statement));
}

/** The bucket of a name: the first 12 bits of SHA-256 of its UTF-8 bytes. */
export async function bucketOf(name) {
  const digest = await sha256(utf8(name));
  return ((digest[0] << 8) | digest[1]) >> (16 - BUCKET_BITS);
}

export function leafHash(name, value) {
  const encoded = utf8(name);
  if (!(encoded.length > 0 && encoded.length < 256) || value.length !== HASH_BYTES) {
    throw proofInvalid("leaf_invalid", "a leaf is a name of 1 to 255 bytes and a 32-byte statement hash");
  }
  return sha256(concat(Uint8Array.of(0), Uint8Array.of(encoded.length), encoded, value));
}

export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/** RFC 9162 §2.1.3.2: the root that `leaf` at `index` of a tree of `size` leaves and its `path` lead to. */
export async function rootFromPath(index, size, leaf, path) {
  if (!(index >= 0 && index < size)) throw proofInvalid("index_invalid", "the leaf's index is outside the bucket");
  // Indices stay below 2^53: halve with Math.floor, not with 32-bit shifts.
  let fn = index;
  let sn = size - 1;
  let node = leaf;
  for (const sibling of path) {
    if (sn === 0) throw proofInvalid("path_invalid", "the path is longer than the bucket's tree");
    if (fn % 2 === 1 || fn === sn) {
      node = await nodeHash(sibling, node);
      if (fn % 2 === 0) {
        while (fn !== 0 && fn % 2 === 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      node = await nodeHash(node, sibling);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw proofInvalid("path_invalid", "the path is shorter than the bucket's tree");
  return node;
}

export async function rootFromTopPath(bucket, bucketRoot, path) {
  if (path.length !== BUCKET_BITS) throw proofInvalid("path_invalid", `the top path has ${BUCKET_BITS} hashes`);
  let node = bucketRoot;
  for (let depth = 0; depth < BUCKET_BITS; depth++) {
    node = (bucket >> depth) & 1 ? await nodeHash(path[depth], node) : await nodeHash(node, path[depth]);
  }
  return node;
}

function exactKeys(value, keys) {
  return (
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    Object.keys(value).sort().join() === [...keys].sort().join()
  );
}

function integerIn(value, low, high) {
  return Number.isSafeInteger(value) && value >= low && value <= high;
}

/** A proof's wire form, read as strictly as `Proof.from_dict`: `proof_invalid` for anything else. */
export function parseProof(raw) {
  const bad = (problem) => proofInvalid("proof_invalid", `proof: ${problem}`);
  if (!exactKeys(raw, ["bucket", "index", "size", "path", "top"])) throw bad("has exactly bucket, index, size, path, top");
  if (!integerIn(raw.bucket, 0, BUCKETS - 1)) throw bad("bucket must be between 0 and 4095");
  if (!integerIn(raw.size, 1, MAX_SAFE_INTEGER)) throw bad("size must be at least 1");
  if (!integerIn(raw.index, 0, raw.size - 1)) throw bad("index must be a leaf of the bucket");
  if (!Array.isArray(raw.path) || raw.path.length > MAX_PATH) throw bad(`path is a list of at most ${MAX_PATH}`);
  if (!Array.isArray(raw.top) || raw.top.length > BUCKET_BITS) throw bad(`top is a list of at most ${BUCKET_BITS}`);
  const hashes = (list) =>
    list.map((text) => {
      let bytes;
      try {
        bytes = fromHex(text);
      } catch {
        throw bad("a hash is not 0x… hex");
      }
      if (bytes.length !== HASH_BYTES) throw bad("each hash is 32 bytes");
      return bytes;
    });
  return { bucket: raw.bucket, index: raw.index, size: raw.size, path: hashes(raw.path), top: hashes(raw.top) };
}

/** A root `{v,cutoff,size,root}`, read as strictly as `Root.from_dict`: `root_invalid` otherwise. */
export function parseRoot(raw) {
  const bad = (problem) => proofInvalid("root_invalid", `root: ${problem}`);
  if (!exactKeys(raw, ["v", "cutoff", "size", "root"]) || raw.v !== 1) throw bad("has exactly v (1), cutoff, size, root");
  if (!integerIn(raw.cutoff, 0, MAX_SAFE_INTEGER) || !integerIn(raw.size, 0, MAX_SAFE_INTEGER)) {
    throw bad("cutoff and size are integers");
  }
  let root;
  try {
    root = fromHex(raw.root);
  } catch {
    root = new Uint8Array(0);
  }
  if (root.length !== HASH_BYTES) throw bad("a 32-byte hash as 0x… hex");
  return { cutoff: raw.cutoff, size: raw.size, root };
}

export function rootDict(root) {
  return { v: 1, cutoff: root.cutoff, size: root.size, root: toHex(root.root) };
}

/** The bytes each gateway signs with its Maxima key (maxsign): the canonical JSON of the root. */
export function rootCanonical(root) {
  return canonicalJson(rootDict(root));
}

function sameRoot(a, b) {
  return a.cutoff === b.cutoff && a.size === b.size && equalBytes(a.root, b.root);
}

/** The bulletin's `root` (a root and its signers), as strictly as `SignedRoot.from_dict`. */
export function parseSignedRoot(raw) {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw proofInvalid("root_invalid", "root: not an object");
  const { signers, ...rest } = raw;
  const root = parseRoot(rest);
  if (!Array.isArray(signers) || signers.length > MAX_SIGNERS) {
    throw proofInvalid("root_invalid", `signers: a list of at most ${MAX_SIGNERS}`);
  }
  const parsed = signers.map((item) => {
    if (!exactKeys(item, ["key", "signature"]) || typeof item.key !== "string") {
      throw proofInvalid("root_invalid", "signers: each has exactly key and signature");
    }
    const key = "0x" + item.key.slice(2).toUpperCase();
    let signature;
    try {
      signature = fromHex(item.signature);
    } catch {
      signature = new Uint8Array(0);
    }
    if (!/^0[xX]/.test(item.key) || !isPublicKeyHex(key) || signature.length !== SIGNATURE_BYTES) {
      throw proofInvalid("root_invalid", "signers: a key or a signature is not 0x… hex of the right size");
    }
    return { key, signature };
  });
  return { root, signers: parsed };
}

/** The keys whose signature over the root verifies (each once); the others are ignored. */
export async function verifiedSigners(signedRoot) {
  const message = rootCanonical(signedRoot.root);
  const verified = [];
  for (const { key, signature } of signedRoot.signers) {
    if (verified.includes(key)) continue;
    let ok = false;
    try {
      ok = await rsaVerify(key, message, signature);
    } catch {
      ok = false;
    }
    if (ok) verified.push(key);
  }
  return verified;
}

/** Throw a Refused with `Proof.from_dict`/`check_in_directory`'s code unless `proof` shows this very statement
 * for `name` under `root` (a parsed root). */
export async function checkInDirectory({ root, name, statement, proof }) {
  const parsed = parseProof(proof);
  if (statement.name !== name) throw proofInvalid("name_wrong", "the statement is for another name");
  if (statement.issued_at > root.cutoff) {
    throw proofInvalid("after_cutoff", "the statement was issued after the root's cut-off");
  }
  if (parsed.bucket !== (await bucketOf(name))) {
    throw proofInvalid("bucket_wrong", "the proof is for another bucket than the name's");
  }
  const leaf = await leafHash(name, await statementHash(statement));
  const bucketRoot = await rootFromPath(parsed.index, parsed.size, leaf, parsed.path);
  if (!equalBytes(await rootFromTopPath(parsed.bucket, bucketRoot, parsed.top), root.root)) {
    throw proofInvalid("root_mismatch", "the proof does not lead to the root");
  }
}

/** RFC 9162's Merkle tree hash over already-hashed leaves (SHA-256 of nothing for none), as `merkle_root`. */
export async function merkleRoot(leaves) {
  if (leaves.length === 0) return sha256(new Uint8Array(0));
  let level = [...leaves];
  while (level.length > 1) {
    const paired = [];
    for (let i = 0; i + 1 < level.length; i += 2) paired.push(await nodeHash(level[i], level[i + 1]));
    if (level.length % 2) paired.push(level[level.length - 1]);
    level = paired;
  }
  return level[0];
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** A proof of absence's wire form `{entries: [[name, "0x…"], …], top: [12 × "0x…"]}`, read as strictly as
 * `Absence.from_dict`: `proof_invalid` for anything else. */
export function parseAbsence(raw) {
  const bad = (problem) => proofInvalid("proof_invalid", problem);
  if (!exactKeys(raw, ["entries", "top"])) throw bad("bucket: has exactly entries and top");
  if (!Array.isArray(raw.entries) || raw.entries.length > MAX_BUCKET_ENTRIES) {
    throw bad(`entries: must be a list of at most ${MAX_BUCKET_ENTRIES} items`);
  }
  if (!Array.isArray(raw.top) || raw.top.length > BUCKET_BITS) throw bad(`top: must be a list of at most ${BUCKET_BITS} items`);
  const hash = (field, text) => {
    let bytes;
    try {
      bytes = fromHex(text);
    } catch {
      throw bad(`${field}: not 0x… hex`);
    }
    if (bytes.length !== HASH_BYTES) throw bad(`${field}: each hash is 32 bytes`);
    return bytes;
  };
  const entries = raw.entries.map((item) => {
    if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== "string" || !item[0].isWellFormed()) {
      throw bad("entries: each entry is [name, statement hash]");
    }
    return [item[0], hash("entries", item[1])];
  });
  return { entries, top: raw.top.map((text) => hash("top", text)) };
}

/** Throw a Refused with `check_absent`'s code unless the bucket shows `name` absent under `root` (a parsed root):
 * the entries in tree order, each once and of the name's bucket, the name not among them, and they and the top
 * path lead to the root. */
export async function checkAbsent({ root, name, absence }) {
  const parsed = parseAbsence(absence);
  const bucket = await bucketOf(name);
  const names = parsed.entries.map(([entryName]) => utf8(entryName));
  for (let i = 1; i < names.length; i++) {
    if (compareBytes(names[i], names[i - 1]) <= 0) {
      throw proofInvalid("entries_unordered", "the bucket's entries are not in tree order, each name once");
    }
  }
  for (const [entryName] of parsed.entries) {
    if ((await bucketOf(entryName)) !== bucket) {
      throw proofInvalid("bucket_wrong", "an entry is of another bucket than the name's");
    }
  }
  if (parsed.entries.some(([entryName]) => entryName === name)) {
    throw proofInvalid("name_in_bucket", "the name is in its bucket: it is in the directory");
  }
  const leaves = [];
  for (const [entryName, value] of parsed.entries) leaves.push(await leafHash(entryName, value));
  const top = await rootFromTopPath(bucket, await merkleRoot(leaves), parsed.top);
  if (!equalBytes(top, root.root)) {
    throw proofInvalid("root_mismatch", "the bucket does not lead to the root: an entry is missing or changed");
  }
}

/** `check_successor` of mns_client/protocol/statements.py: may `next` follow `previous` (both checked)? */
export function checkSuccessor(previous, next) {
  const no = (code, detail) => new Refused(code, detail);
  if (next.name !== previous.name) throw no("statement_wrong_name", "the statement is about another name");
  if (sameStatement(next, previous)) throw no("statement_duplicate", "already the current one");
  if (next.seq <= previous.seq) throw no("statement_stale_seq", "seq is not greater than the current one");
  if (previous.op === "release") {
    if (next.op !== "register") throw no("statement_after_release", "after a release only register may follow");
    return;
  }
  if (next.op === "accept") {
    if (previous.op !== "transfer") throw no("transfer_not_pending", "no transfer is pending");
    if (next.owner !== previous.to) throw no("statement_wrong_owner", "the transfer is offered to another key");
    if (next.accepts !== previous.seq) throw no("transfer_wrong_offer", "it accepts another offer");
    if (next.issued_at > previous.expires_at) throw no("transfer_expired", "the offer expired before it was accepted");
    return;
  }
  if (next.owner !== previous.owner) throw no("statement_wrong_owner", "the name belongs to another key");
  if (next.op === "register") throw no("statement_already_registered", "a held name cannot be registered again");
}

function sameStatement(a, b) {
  return equalBytes(canonicalJson(a), canonicalJson(b));
}

function when(ms) {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function inText(root, signers) {
  return `root of ${when(root.cutoff)}, signed by ${signers.length} gateway${signers.length === 1 ? "" : "s"}`;
}

class Outcome extends Error {
  constructor(status, detail, reason = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.reason = reason;
  }
}

/**
 * The outcome of a lookup's `transparency` object (`answer`, undefined/null when absent) for `name`, whose current
 * signed statement `current` ({statement, signature}) the caller already verified, against `chainRoot` (the
 * bulletin's parsed root, null: none on chain). `between()` gives the name's signed statements (the history), asked
 * only when another key holds the name than the one in the directory. Returns
 * `{status, detail, failed, reason, root, signers, listed, seq}`; never throws for a bad answer.
 */
export async function checkLookup({ name, current, answer, chainRoot, between = null }) {
  if (!chainRoot) return outcome("no_root", "not checked: there is no directory root on chain yet");
  const base = { root: chainRoot.root, signers: await verifiedSigners(chainRoot), listed: chainRoot.signers.length };
  try {
    return await check(name, current, answer, chainRoot.root, between, base);
  } catch (error) {
    if (!(error instanceof Outcome)) throw error;
    return outcome(error.status, error.detail, { ...base, reason: error.reason });
  }
}

function outcome(status, detail, extra = {}) {
  return { status, detail, failed: FAILURES.has(status), reason: null, root: null, signers: [], listed: 0, seq: null, ...extra };
}

async function check(name, current, answer, root, between, base) {
  if (answer === undefined || answer === null) {
    throw new Outcome("no_proof", "not checked: the gateway gave no proof against the directory root");
  }
  if (typeof answer !== "object" || Array.isArray(answer)) {
    throw new Outcome("answer_invalid", "the gateway's transparency answer is not a JSON object");
  }
  if (answer.status === "no_root" && exactKeys(answer, ["status"])) {
    throw new Outcome("no_proof", "not checked: the gateway has no proof for the root on chain yet");
  }
  let answered;
  try {
    answered = parseRoot(answer.root);
  } catch (error) {
    throw new Outcome("answer_invalid", `the gateway's root is malformed: ${error.message}`, error.code);
  }
  if (!sameRoot(answered, root)) {
    if (answered.cutoff === root.cutoff) {
      throw new Outcome("root_differs", "the gateway's root differs from the one on chain: this gateway may be lying");
    }
    throw new Outcome(
      "root_differs",
      `the gateway's root differs from the one on chain (its cut-off is ${when(answered.cutoff)}, the chain's ` +
        `${when(root.cutoff)}): this gateway may be lying, or it or your node has not read the newest bulletin ` +
        "yet; try again in a minute",
      "cutoff_differs",
    );
  }
  if ("status" in answer) {
    if (
      answer.status !== "not_in_directory" ||
      !(exactKeys(answer, ["status", "root"]) || exactKeys(answer, ["status", "root", "bucket"]))
    ) {
      throw new Outcome("answer_invalid", "the gateway's transparency answer has an unknown status");
    }
    const proven = "bucket" in answer;
    if (proven) {
      try {
        await checkAbsent({ root, name, absence: answer.bucket });
      } catch (error) {
        if (!(error instanceof Refused)) throw error;
        throw new Outcome(
          "proof_invalid",
          `the gateway's proof that the name is not in the directory does not hold: ${error.message}`,
          error.code,
        );
      }
    }
    if (current.statement.issued_at > root.cutoff) {
      const text = proven
        ? "not in the published directory yet: registered after its cut-off (its bucket shows it absent then)"
        : "not in the published directory yet: registered after its cut-off, so nothing proves this answer yet";
      return outcome("not_yet", text, base);
    }
    const text = proven
      ? "not in the published directory, proven by its bucket, though its statement is dated before the cut-off: " +
        "it reached the network after the root was made"
      : "the gateway says it is not in the published directory, though its statement is dated before the cut-off: " +
        "not proven (it reached the network late, or the gateway hides it)";
    return outcome("not_in_directory", text, base);
  }
  if (!exactKeys(answer, ["root", "statement", "proof", "current"]) || typeof answer.current !== "boolean") {
    throw new Outcome(
      "answer_invalid",
      "the gateway's transparency answer has not exactly root, statement, proof, current",
    );
  }
  let held;
  try {
    held = await verifyStatement(answer.statement);
  } catch (error) {
    throw new Outcome(
      "statement_invalid",
      `the statement the gateway proves is not validly signed: ${error.message}`,
      error.code,
    );
  }
  try {
    await checkInDirectory({ root, name, statement: held, proof: answer.proof });
  } catch (error) {
    throw new Outcome("proof_invalid", `the gateway's proof does not hold: ${error.message}`, error.code);
  }
  const same =
    sameStatement(held, current.statement) &&
    answer.statement.signature.toUpperCase() === String(current.signature).toUpperCase();
  if (answer.current) {
    if (!same) throw new Outcome("not_current", "the gateway proves another statement than the one it serves as current");
    return outcome("in_directory", `in the published directory (${inText(root, base.signers)})`, { ...base, seq: held.seq });
  }
  await checkLater(held, answer.statement.signature, current, root, between);
  return outcome(
    "changed_since",
    `changed since the published directory: seq ${held.seq} is in it (${inText(root, base.signers)}); ` +
      `seq ${current.statement.seq} ${laterText(current.statement, root)}`,
    { ...base, seq: held.seq },
  );
}

function laterText(statement, root) {
  if (statement.issued_at > root.cutoff) return "was issued after its cut-off";
  return "is dated before its cut-off but reached the network after the root was made";
}

// A later statement of the name: a higher seq, and a valid chain of signed statements when the key changed. It may
// be dated before the cut-off (it reached the network after the root was made): every step is the holder's word.
async function checkLater(old, oldSignature, current, root, between) {
  const next = current.statement;
  if (next.seq <= old.seq) {
    throw new Outcome(
      "not_current",
      `the gateway serves seq ${next.seq} as current, but seq ${old.seq} is in the directory and the current one ` +
        "is not a later change",
    );
  }
  if (next.owner === old.owner || (old.op === "release" && next.op === "register")) return;
  const chain = between ? (await between()).slice(0, MAX_HISTORY) : [];
  const middle = chain.filter((s) => s && s.statement && s.statement.seq > old.seq && s.statement.seq < next.seq);
  middle.sort((a, b) => a.statement.seq - b.statement.seq);
  const steps = [{ statement: old, signature: oldSignature }, ...middle, current];
  try {
    for (let i = 1; i < steps.length; i++) {
      await verifyStatement(steps[i]);
      checkSuccessor(steps[i - 1].statement, steps[i].statement);
    }
  } catch (error) {
    throw new Outcome(
      "not_current",
      "another key holds the name than the one in the directory, and the gateway cannot show a valid chain of " +
        `statements leading there (${error.code})`,
      error.code,
    );
  }
}
