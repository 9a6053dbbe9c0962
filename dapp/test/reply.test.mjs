// Reply addresses in the Dapp: the same choice as `mns init` (docs/protocol.md, "Reply addresses").
import assert from "node:assert/strict";
import { test } from "node:test";
import { NodeRPC, replyAddress } from "../src/node.js";

const INFO = {
  publickey: "0x30819F01",
  mls: "MxHOST@127.0.0.1:9001",
  p2pidentity: "MxSELF@127.0.0.1:12001",
  localidentity: "MxSELF@127.0.0.1:12001",
  contact: "MxPERHOST@127.0.0.1:9001",
  name: "noname",
};

/** A node that answers `maxima action:info` with `info` and its own probe with `delivered`. */
class Node extends NodeRPC {
  constructor(info, delivered) {
    super({ url: "http://127.0.0.1:9005" });
    this.info = info;
    this.delivered = delivered;
    this.lines = [];
  }

  async command(line) {
    this.lines.push(line);
    return line.startsWith("maxima action:info") ? this.info : { delivered: this.delivered };
  }
}

test("a node whose p2pidentity does not answer its own probe is answered through its contact", async () => {
  const node = new Node(INFO, false);
  const me = await node.identity();
  assert.equal(me.replyVia, "contact");
  assert.equal(me.replyTo, INFO.contact);
  assert.equal(node.lines[1], `maxima action:send to:${INFO.p2pidentity} application:mns-probe data:0x00`);
});

test("a node that answers at its p2pidentity is answered directly", async () => {
  const me = await new Node(INFO, true).identity();
  assert.deepEqual([me.replyVia, me.replyTo], ["direct", INFO.p2pidentity]);
});

test("a node without a Maxima host is answered directly without a probe", async () => {
  const node = new Node({ ...INFO, contact: INFO.p2pidentity }, false);
  const me = await node.identity();
  assert.equal(me.replyVia, "direct");
  assert.equal(node.lines.length, 1);
});

test("a chosen route is used as it is, and max names the identity key and the MLS", async () => {
  const me = await new Node(INFO, true).identity({ replyVia: "max" });
  assert.equal(me.replyTo, "MAX#0x30819F01#MxHOST@127.0.0.1:9001");
  assert.throws(() => replyAddress(INFO, "pigeon"), { code: "reply_via_invalid" });
});
