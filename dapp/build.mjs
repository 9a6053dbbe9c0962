// Build the MNS Dapp: `node build.mjs [--out DIR] [--zip FILE] [--name NAME]` (after `npm ci`).
// DIR gets the files the gateway serves at /app/: the app's modules as they are, the crypto library
// (libsodium + its wrappers, from node_modules) as one file named by its content hash, and index.html pointing at
// it. FILE (optional) is the installable MiniDapp: the same files at the zip's root with dapp.conf (name, icon,
// version, description, browser, permission), our own MDS client (mds-client.js: the node serves its own
// library for any file named mds.js) and the node-run service.js. NAME
// replaces dapp.conf's name: other MiniDapps address this one's MDS.api by it (`--name MNS` answers the
// `MDS.api.call("mns", …)` of MiniDapps written for Minima's own MNS, in its place).
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateRawSync } from "node:zlib";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data) {
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? resolve(args[args.indexOf(name) + 1]) : fallback);
const out = option("--out", join(here, "..", "var", "dapp", "site"));
const zipFile = option("--zip", null);
const dappName = args.includes("--name") ? args[args.indexOf("--name") + 1] : null;

const vendor = ["libsodium/dist/modules/libsodium.js", "libsodium-wrappers/dist/modules/libsodium-wrappers.js"].map(
  (file) => readFileSync(join(here, "node_modules", file), "utf8"),
);
const sodium = vendor.join(";\n");
const sodiumName = `sodium.${createHash("sha256").update(sodium).digest("hex").slice(0, 16)}.js`;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(join(out, sodiumName), sodium);
for (const file of readdirSync(join(here, "src"))) {
  if (file === "index.html") continue;
  copyFileSync(join(here, "src", file), join(out, file));
}
const conf = JSON.parse(readFileSync(join(here, "dapp.conf"), "utf8"));
if (dappName) conf.name = dappName;
for (const key of ["name", "icon", "version", "description", "browser", "permission"]) {
  if (typeof conf[key] !== "string" || !conf[key]) throw new Error(`dapp.conf needs a ${key}`);
}
for (const needed of [conf.icon, "service.js", "mds-client.js"]) {
  if (!readdirSync(out).includes(needed)) throw new Error(`the MiniDapp needs ${needed} in src/`);
}
writeFileSync(join(out, "dapp.conf"), JSON.stringify(conf, null, 1) + "\n");
const html = readFileSync(join(here, "src", "index.html"), "utf8");
if (!html.includes("SODIUM_JS")) throw new Error("index.html lost its SODIUM_JS placeholder");
writeFileSync(join(out, "index.html"), html.replace("SODIUM_JS", sodiumName));

if (zipFile) {
  mkdirSync(dirname(zipFile), { recursive: true });
  writeFileSync(zipFile, zip(readdirSync(out).sort().map((name) => [name, readFileSync(join(out, name))])));
}
const files = readdirSync(out);
const bytes = files.reduce((n, f) => n + statSync(join(out, f)).size, 0);
console.log(`MNS Dapp built: ${files.length} files, ${bytes} bytes in ${out}${zipFile ? `; MiniDapp: ${zipFile}` : ""}`);

/** A plain zip (deflate, no directories, fixed 1980 timestamps so the same input gives the same bytes). */
function zip(entries) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const nameBytes = Buffer.from(name, "utf8");
    const packed = deflateRawSync(data, { level: 9 });
    const crc = crc32(data);
    const head = Buffer.alloc(30);
    head.writeUInt32LE(0x04034b50, 0);
    head.writeUInt16LE(20, 4);
    head.writeUInt16LE(0x0800, 6); // UTF-8 names
    head.writeUInt16LE(8, 8); // deflate
    head.writeUInt16LE(0, 10);
    head.writeUInt16LE(33, 12); // 1980-01-01
    head.writeUInt32LE(crc, 14);
    head.writeUInt32LE(packed.length, 18);
    head.writeUInt32LE(data.length, 22);
    head.writeUInt16LE(nameBytes.length, 26);
    head.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(33, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(head, nameBytes, packed);
    centrals.push(central, nameBytes);
    offset += head.length + nameBytes.length + packed.length;
  }
  const size = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(size, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}
