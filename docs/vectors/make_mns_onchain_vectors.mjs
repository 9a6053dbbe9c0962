// Write docs/vectors/mns-onchain.json: what Minima's MNS MiniDapp (v0.6) signs for a record coin, computed with
// JavaScript's own encodeURIComponent (the MiniDapp's encodeStringForDB: encodeURIComponent, then ' -> %27), so
// the Python reader (mns_client/protocol/chainnames.py) is checked against the browser's function, not itself.
// Run from the repository root: node docs/vectors/make_mns_onchain_vectors.mjs
import { writeFileSync } from "node:fs";

const A = "0xCDCDA9DEF760393E4E553FA2D206B33E2F0EF1B9E18C495E226FB7B02AAD57FE";
const C = "0xF4491653C103ACC5640B9AB61C4C1279ABC4B8A3766FB795D8738B89472C1FCF";
const cases = [
  ["fixture 120: node A registers mnsfixture", A, A, "mnsfixture",
    '{"address":"MxG087V46ZUERDNV04M2APEU8NJNKPFJJCM2WDD6DCE3DF0A8ANZKBCYT84FZ85"}', "0x00"],
  ["a transfer to another key", A, C, "mnsfixture", "", "0x00"],
  ["a quote, spaces and every character encodeURIComponent keeps", A, A, "o'hara", "a b-_.!~*()'", "0xABCD"],
  ["text outside ASCII is UTF-8, percent-encoded", A, A, "zoë", "名前 ✓", "0x00"],
  ["reserved characters are escaped", A, A, "x", "a:b/c?d#e&f=g+h%i[j]k", "0x00"],
];
const encode = (text) => encodeURIComponent(text).split("'").join("%27");
const vectors = cases.map(([description, owner, transfer, name, data, datahex]) => {
  const text = encode(`${owner}:${transfer}:${name}:${data}:${datahex}`);
  const hex = "0x" + Buffer.from(text, "utf8").toString("hex").toUpperCase();
  return { description, owner, transfer, name, data, datahex, signed_text: text, signed_hex: hex };
});
const body = {
  description:
    "What Minima's MNS (v0.6) signs for a record coin (docs/protocol.md, 'Names on chain'): signed_text is " +
    "encodeURIComponent(owner:transfer:name:data:datahex) with ' as %27, signed_hex what `convert from:string " +
    "to:hex` gives and `sign`/`verify` take as data. Made by make_mns_onchain_vectors.mjs with JavaScript's own " +
    "encodeURIComponent.",
  vectors,
};
writeFileSync("docs/vectors/mns-onchain.json", JSON.stringify(body, null, 2) + "\n");
