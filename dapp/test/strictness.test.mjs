// One spelling, as the Python core's fields module has it (docs/protocol.md, "One spelling, in every wire
// format"): true/false is never an integer, null is never an absent key, an absent optional key is fine, and a key
// written twice is refused.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as mns from "../src/mns.js";

const vectors = (name) => JSON.parse(readFileSync(new URL(`../../docs/vectors/${name}`, import.meta.url), "utf8"));
const statement = () => ({ ...vectors("statements.json").vectors[0].statement, payment_address: "0x" + "AB".repeat(32) });
const envelopes = vectors("envelopes.json");
const letter = () => ({ ...envelopes.vectors[0].letter, from_name: "bob", subject: "lunch" });

const formats = [
  { name: "statement", body: statement, check: mns.checkStatement, code: "statement_invalid",
    integers: ["v", "seq", "issued_at"], optional: ["payment_address"] },
  { name: "letter", body: letter, check: mns.checkLetter, code: "envelope_invalid",
    integers: ["v", "sent_at"], optional: ["from_name", "subject"] },
];

for (const format of formats) {
  test(`the ${format.name} used below is valid as it is`, () => {
    format.check(format.body());
  });

  for (const field of format.integers) {
    for (const value of [true, false]) {
      test(`a ${format.name} with ${field}: ${value} is refused`, () => {
        assert.throws(() => format.check({ ...format.body(), [field]: value }), { code: format.code });
      });
    }
  }

  for (const field of format.optional) {
    test(`a ${format.name} with ${field}: null is refused, and without ${field} it is read`, () => {
      assert.throws(() => format.check({ ...format.body(), [field]: null }), { code: format.code });
      const absent = format.body();
      delete absent[field];
      assert.equal(field in format.check(absent), false);
    });
  }
}

test("a signed statement with an unknown key or a null signature is refused before any signature check", async () => {
  const vector = vectors("statements.json").vectors[0];
  const signed = { statement: vector.statement, signature: vector.signature_hex };
  await assert.rejects(mns.verifyStatement({ ...signed, extra: 1 }), { code: "statement_invalid" });
  await assert.rejects(mns.verifyStatement({ ...signed, signature: null }), { code: "statement_invalid" });
});

test("a plaintext with a key written twice is refused even when both copies are the same", async () => {
  const plaintext = envelopes.vectors[0].plaintext;
  const outer = '{"sig":' + JSON.stringify(JSON.parse(plaintext).sig) + "," + plaintext.slice(1);
  const inner = plaintext.replace('{"letter":{', '{"letter":{"v":1,');
  for (const doubled of [outer, inner]) {
    assert.deepEqual(JSON.parse(doubled), JSON.parse(plaintext)); // JSON.parse alone would take it
    await assert.rejects(mns.openLetter(mns.utf8(doubled), { name: "alice" }), { code: "envelope_invalid" });
  }
  assert.equal((await mns.openLetter(mns.utf8(plaintext), { name: "alice" })).to, "alice");
});

test("repeatedKey finds a key written twice in one object only", () => {
  assert.equal(mns.repeatedKey('{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}'), null);
  assert.equal(mns.repeatedKey('{"a":"x\\",\\"a","a":1}'), "a");
  assert.equal(mns.repeatedKey('{"a":{"b":1,"b":2}}'), "b");
  assert.equal(mns.repeatedKey('[{"a":1},{"a":1,"a":1}]'), "a");
  assert.equal(mns.repeatedKey('{"\\u0061":1,"a":2}'), "a");
});
