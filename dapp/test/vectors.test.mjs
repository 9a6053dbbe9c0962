// The JS implementation against the shared vectors in docs/vectors/ (the same files the Python tests read).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import sodium from "libsodium-wrappers";
import * as mns from "../src/mns.js";

const vectors = (name) => JSON.parse(readFileSync(new URL(`../../docs/vectors/${name}`, import.meta.url), "utf8"));
const statements = vectors("statements.json");
const envelopes = vectors("envelopes.json");
await sodium.ready;

test("every statement's canonical bytes are the vector's, byte for byte", () => {
  for (const vector of statements.vectors) {
    const bytes = mns.statementCanonical(vector.statement);
    assert.equal(new TextDecoder().decode(bytes), vector.canonical, vector.description);
    assert.equal(mns.toHex(bytes), vector.canonical_hex, vector.description);
  }
});

test("every statement's signature verifies with WebCrypto over the owner's SPKI key", async () => {
  for (const vector of statements.vectors) {
    const statement = await mns.verifyStatement({ statement: vector.statement, signature: vector.signature_hex });
    assert.equal(statement.name, vector.statement.name);
  }
});

test("a statement changed after signing does not verify", async () => {
  const vector = statements.vectors[0];
  const changed = { ...vector.statement, seq: vector.statement.seq + 1 };
  await assert.rejects(mns.verifyStatement({ statement: changed, signature: vector.signature_hex }), {
    code: "signature_invalid",
  });
});

test("a statement with a lower-case key or a null field is refused before any signature check", async () => {
  const vector = statements.vectors[0];
  const lower = { ...vector.statement, owner: vector.statement.owner.toLowerCase().replace("0x", "0x") };
  assert.throws(() => mns.checkStatement(lower), { code: "statement_invalid" });
  assert.throws(() => mns.checkStatement({ ...vector.statement, payment_address: null }), {
    code: "statement_invalid",
  });
});

test("a gateway record is used only when its fields are the signed statement's", async () => {
  const vector = statements.vectors[0];
  const record = { ...vector.statement, statement: vector.statement, signature: vector.signature_hex };
  const verified = await mns.verifiedRecord("alice", record);
  assert.equal(verified.box_key, vector.statement.box_key);
  const swapped = { ...record, box_key: statements.vectors[1].statement.box_key };
  await assert.rejects(mns.verifiedRecord("alice", swapped), { code: "record_mismatch" });
});

test("a transfer and its acceptance verify, the acceptance with the new owner's key", async () => {
  const [, offer, accepted] = statements.vectors.slice(4, 7);
  const record = { ...offer.statement, statement: offer.statement, signature: offer.signature_hex };
  const verified = await mns.verifiedRecord("carol", record);
  assert.deepEqual(verified.transfer, { to: offer.statement.to, expires_at: offer.statement.expires_at, offer: 2 });
  assert.deepEqual(verified.data, offer.statement.data);
  const taken = await mns.verifyStatement({ statement: accepted.statement, signature: accepted.signature_hex });
  assert.equal(taken.owner, offer.statement.to);
  const forged = { ...accepted.statement, owner: offer.statement.owner };
  await assert.rejects(mns.verifyStatement({ statement: forged, signature: accepted.signature_hex }), {
    code: "signature_invalid",
  });
});

test("a data record outside the bounds is refused as Python refuses it", () => {
  const base = statements.vectors[4].statement;
  const bad = [
    {},
    { a: null },
    { a: 1.5 },
    { "a b": 1 },
    { a: "line\nbreak" },
    { a: "\ud800" },
    { a: { b: { c: { d: { e: 1 } } } } },
    Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i])),
    { a: "x".repeat(1020) },
  ];
  for (const data of bad) {
    assert.throws(() => mns.checkStatement({ ...base, data }), { code: "statement_invalid" }, JSON.stringify(data));
  }
  const exact = { a: "x".repeat(1024 - '{"a":""}'.length) };
  assert.equal(mns.checkData(exact), exact);
  assert.equal(mns.checkData({ smile: "😀" }).smile, "😀");
});

test("the transfer fields belong to their op only", () => {
  const [, offer, accepted] = statements.vectors.slice(4, 7);
  const { to, expires_at, ...update } = offer.statement;
  assert.throws(() => mns.checkStatement({ ...update, op: "update", to }), { code: "statement_invalid" });
  assert.throws(() => mns.checkStatement({ ...offer.statement, to: offer.statement.owner }), { code: "statement_invalid" });
  assert.throws(() => mns.checkStatement({ ...offer.statement, expires_at: offer.statement.issued_at }), {
    code: "statement_invalid",
  });
  assert.throws(() => mns.checkStatement({ ...accepted.statement, accepts: 3 }), { code: "statement_invalid" });
  assert.equal(expires_at, offer.statement.expires_at);
});

test("every letter's canonical bytes and plaintext are the vector's, byte for byte", () => {
  for (const vector of envelopes.vectors) {
    const letter = mns.checkLetter(vector.letter);
    assert.equal(mns.toHex(mns.letterCanonical(letter)), vector.canonical_hex, vector.description);
    const plaintext = mns.signedLetterBytes(letter, mns.fromHex(vector.signature_hex));
    assert.equal(new TextDecoder().decode(plaintext), vector.plaintext, vector.description);
  }
});

test("a letter made from a body picks body for UTF-8 text and body_b64 for other bytes", () => {
  for (const vector of envelopes.vectors) {
    const given = vector.letter;
    const body = "body" in given ? given.body : mns.fromBase64(given.body_b64);
    const made = mns.makeLetter({
      id: given.id,
      from: given.from,
      to: given.to,
      sentAt: given.sent_at,
      body,
      subject: given.subject,
      fromName: given.from_name,
    });
    assert.equal(mns.toHex(mns.letterCanonical(made)), vector.canonical_hex, vector.description);
  }
});

test("the sealed-box vectors are reproduced byte for byte from the ephemeral key", () => {
  const boxPublic = mns.fromHex(envelopes.box_public_hex);
  const ephemeral = mns.fromHex(envelopes.ephemeral_private_hex);
  for (const vector of envelopes.vectors.filter((v) => v.scheme === mns.SCHEME_NACL)) {
    const ciphertext = mns.sealWithEphemeral(sodium, boxPublic, mns.utf8(vector.plaintext), ephemeral);
    assert.equal(mns.toHex(ciphertext), vector.ciphertext_hex, vector.description);
  }
});

test("the sealed-box vectors open with the box private key and their letters verify", async () => {
  const boxPrivate = mns.fromHex(envelopes.box_private_hex);
  for (const vector of envelopes.vectors.filter((v) => v.scheme === mns.SCHEME_NACL)) {
    const plaintext = mns.unseal(sodium, [boxPrivate], mns.fromHex(vector.ciphertext_hex));
    const letter = await mns.openLetter(plaintext, { name: vector.letter.to, deliverySender: vector.letter.from });
    assert.deepEqual(letter, vector.letter);
  }
});

test("a box sealed here opens in the same code and a wrong key does not open it", () => {
  const keys = sodium.crypto_box_keypair();
  const ciphertext = mns.seal(sodium, keys.publicKey, mns.utf8("hello"));
  assert.equal(ciphertext.length, 5 + 48);
  assert.equal(new TextDecoder().decode(mns.unseal(sodium, [keys.privateKey], ciphertext)), "hello");
  assert.throws(() => mns.unseal(sodium, [sodium.crypto_box_keypair().privateKey], ciphertext), {
    code: "envelope_undecryptable",
  });
});

test("every invalid plaintext of the vectors is refused with its code", async () => {
  for (const vector of envelopes.invalid) {
    await assert.rejects(mns.openLetter(mns.utf8(vector.plaintext), { name: vector.read_as }), { code: vector.code },
      vector.description);
  }
});

test("a letter delivered by another key than its signer is refused", async () => {
  const vector = envelopes.vectors[0];
  await assert.rejects(
    mns.openLetter(mns.utf8(vector.plaintext), { name: "alice", deliverySender: envelopes.recipient_publickey_hex }),
    { code: "envelope_sender_mismatch" },
  );
});

test("the verifier hash is RFC 7636's example in hex", async () => {
  assert.equal(
    await mns.verifierHash("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
    "13d31e961a1ad8ec2f16b10c4c982e0876a878ad6df144566ee1894acb70f9c3",
  );
  assert.match(mns.newVerifier(), /^[A-Za-z0-9_-]{43}$/);
  assert.match(mns.newDeliveryId(), /^[A-Za-z0-9_-]{32}$/);
});

test("the handshake answer and the deliver message are the Python client's bytes", () => {
  const answer = mns.handshakeAnswer({ challenge: "fn51u4icL2jhcQcsF-TYMQ", code: "Gn8ClyYVsnu6EpDatN6RcmQa-FbBvVNL" });
  assert.equal(
    mns.toHex(answer),
    "0x7B2276223A312C2274797065223A2268616E647368616B65222C226368616C6C656E6765223A22666E3531753469634C326A6863516373462D54594D51222C22636F6465223A22476E38436C795956736E753645704461744E3652636D51612D46624276564E4C227D",
  );
  const deliver = mns.deliverMessage({ id: "k3Jd8_x-Qm2VbN7aL0pRtYw1", to: "alice", scheme: mns.SCHEME_NACL,
    ciphertext: new Uint8Array([0x9a, 0x41]) });
  assert.equal(
    new TextDecoder().decode(deliver),
    '{"v":1,"type":"deliver","id":"k3Jd8_x-Qm2VbN7aL0pRtYw1","to":"alice","scheme":"nacl-sealedbox-v1","ciphertext":"0x9A41"}',
  );
});

test("names are normalised as the Python client does, and refused in words", () => {
  assert.equal(mns.normaliseName("  Alice "), "alice");
  assert.equal(mns.normaliseName("ＢＯＢ-smith_42"), "bob-smith_42");
  assert.throws(() => mns.normaliseName("a--b"), { code: "name_invalid" });
  assert.throws(() => mns.normaliseName(""), { code: "name_empty" });
});

test("canonical JSON sorts integer-like keys as text, as Python's sort_keys does (a JS object would not)", () => {
  const value = { b: 1, 10: { 9: true, a: [1, "x"] }, 9: 0, "é": "ü" };
  // json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False), run in Python:
  const python = '{"10":{"9":true,"a":[1,"x"]},"9":0,"b":1,"é":"ü"}';
  assert.equal(new TextDecoder().decode(mns.canonicalJson(value)), python);
});
