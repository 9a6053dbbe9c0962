// The box keys' encrypted form: what is stored in the browser and exported as a file.
import assert from "node:assert/strict";
import { test } from "node:test";
import sodium from "libsodium-wrappers";
import * as keystore from "../src/keystore.js";
import { toHex } from "../src/mns.js";

await sodium.ready;

test("keys locked with a passphrase unlock with it, and the locked form holds no private key", async () => {
  const pair = sodium.crypto_box_keypair();
  const keys = [{ public: pair.publicKey, private: pair.privateKey }];
  const locked = await keystore.lock(keys, "a long passphrase");
  const text = JSON.stringify(locked);
  assert.ok(!text.includes(toHex(pair.privateKey).slice(2)));
  assert.ok(!text.toLowerCase().includes(toHex(pair.privateKey).slice(2).toLowerCase()));
  assert.equal(locked.box_key, toHex(pair.publicKey));
  const unlocked = await keystore.unlock(JSON.parse(text), "a long passphrase");
  assert.deepEqual(unlocked[0].private, pair.privateKey);
});

test("a wrong passphrase is refused in words", async () => {
  const pair = sodium.crypto_box_keypair();
  const locked = await keystore.lock([{ public: pair.publicKey, private: pair.privateKey }], "a long passphrase");
  await assert.rejects(keystore.unlock(locked, "another passphrase"), {
    code: "passphrase_wrong",
    message: "The passphrase does not open your keys.",
  });
});

test("a short passphrase and a malformed private key are refused", async () => {
  const pair = sodium.crypto_box_keypair();
  await assert.rejects(keystore.lock([{ public: pair.publicKey, private: pair.privateKey }], "short"), {
    code: "passphrase_short",
  });
  assert.throws(() => keystore.fromPrivateHex(sodium, "0x1234"), { code: "key_invalid" });
  const imported = keystore.fromPrivateHex(sodium, toHex(pair.privateKey));
  assert.deepEqual(imported.public, pair.publicKey);
});
