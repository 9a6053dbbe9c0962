// The box keys (X25519) live in the Dapp only (this browser, or the MiniDapp's own store on the node), encrypted with a passphrase: PBKDF2-SHA256 (600 000 rounds)
// then AES-256-GCM, with WebCrypto. The stored and exported form is that encrypted JSON; the private keys are in
// memory only while unlocked. Older keys are kept after a new one so older messages still open.

import { base64, fromBase64, fromHex, randomBytes, Refused, toHex, utf8 } from "./mns.js";

const ROUNDS = 600000;
export const STORE = "mns.keys"; // the key of the stored form (localStorage, or the MiniDapp's keypair store)

async function aesKey(passphrase, salt, rounds) {
  const material = await crypto.subtle.importKey("raw", utf8(passphrase), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations: rounds },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/** The encrypted form of `keys` ([{public, private}] as bytes, newest first). */
export async function lock(keys, passphrase) {
  if (!passphrase || passphrase.length < 8) {
    throw new Refused("passphrase_short", "Choose a passphrase of at least 8 characters.");
  }
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const inner = JSON.stringify(keys.map((k) => ({ public: toHex(k.public), private: toHex(k.private) })));
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await aesKey(passphrase, salt, ROUNDS), utf8(inner));
  return {
    v: 1,
    kind: "mns-box-keys",
    kdf: "PBKDF2-SHA256",
    rounds: ROUNDS,
    salt: base64(salt),
    iv: base64(iv),
    ciphertext: base64(new Uint8Array(sealed)),
    box_key: toHex(keys[0].public),
  };
}

/** The keys inside an encrypted form; a wrong passphrase is said in words. */
export async function unlock(stored, passphrase) {
  if (!stored || stored.kind !== "mns-box-keys" || stored.v !== 1) {
    throw new Refused("keyfile_invalid", "This is not an MNS key file.");
  }
  let plain;
  try {
    const key = await aesKey(passphrase, fromBase64(stored.salt), stored.rounds);
    plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64(stored.iv) }, key, fromBase64(stored.ciphertext));
  } catch {
    throw new Refused("passphrase_wrong", "The passphrase does not open your keys.");
  }
  return JSON.parse(new TextDecoder().decode(plain)).map((k) => ({ public: fromHex(k.public), private: fromHex(k.private) }));
}

/** A key pair from a private key typed as 0x + 64 hex digits. */
export function fromPrivateHex(sodium, text) {
  let privateKey;
  try {
    privateKey = fromHex(String(text).trim());
  } catch {
    privateKey = null;
  }
  if (!privateKey || privateKey.length !== 32) {
    throw new Refused("key_invalid", "A box private key is 0x followed by 64 hex digits.");
  }
  return { public: sodium.crypto_scalarmult_base(privateKey), private: privateKey };
}
