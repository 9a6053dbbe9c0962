"""JSON views of transactions, witnesses and TxPoWs with the keys, order and types of fixtures 80, 84 and 88.

The hashes, proofs and difficulties are simnet's own (derived with SHA3 from the content), not mined values.
"""

from typing import Any

from simnet import javajson
from simnet.chain import TOTAL_SUPPLY, Chain, Coin, Txn, h
from simnet.util import java_date, now_ms

_DIFFICULTY = "0x068DB8BAC710CB295E9E1B089A027525460AA64C2F837B4A2339C0EBEDFA43"
_TXNDIFF = "0x0346DC5D63886594AF4F0D844D013A92A305532617C1BDA5119CE075F6FD21"


def _proof(blocktime: str, seed: str, length: int) -> dict[str, Any]:
    return {
        "blocktime": blocktime,
        "proof": [{"left": False, "data": {"data": h("proof", seed, i), "value": "0"}} for i in range(length)],
        "prooflength": length,
    }


def txn_json(txn: Txn) -> dict[str, Any]:
    return {
        "inputs": [c.to_json() for c in txn.inputs],
        "outputs": [c.to_json() for c in txn.outputs],
        "state": [s.to_json() for s in txn.state],
        "linkhash": "0x00",
        "transactionid": txn.transactionid(),
    }


def _signature_json(rootkey: str, signature: str) -> dict[str, Any]:
    """A wallet signature: three WOTS layers in a real node; the first carries simnet's signature."""
    return {
        "signatures": [
            {
                "publickey": h("leaf", rootkey, level),
                "rootkey": rootkey if level == 0 else h("root", rootkey, level),
                "proof": _proof("0", rootkey + str(level), 6),
                "signature": signature if level == 0 else h("sig", signature, level),
            }
            for level in range(3)
        ]
    }


def witness_json(txn: Txn) -> dict[str, Any]:
    return {
        "signatures": [_signature_json(s.rootkey, s.signature) for s in txn.signatures],
        "mmrproofs": [
            {"coin": c.to_json(), "proof": _proof(str(c.created), c.coinid, length)} for c, length in txn.mmrproofs
        ],
        "scripts": [
            {"script": script, "address": address, "proof": {"blocktime": "0", "proof": [], "prooflength": 0}}
            for address, script in txn.scripts
        ],
    }


def output_coindata(coin: Coin) -> str:
    return "0x" + javajson.dumps(coin.to_json()).encode("utf-8").hex().upper()


def txn_reply(txn_id: str, txn: Txn) -> dict[str, Any]:
    """The reply of txncreate/txninput/txnoutput/txnstate/txnbasics (fixture 88)."""
    return {
        "id": txn_id,
        "transaction": txn_json(txn),
        "witness": witness_json(txn),
        "outputcoindata": [output_coindata(c) for c in txn.outputs],
    }


def _header(chain: Chain, txpowid: str, millis: int) -> dict[str, Any]:
    block = chain.block
    return {
        "chainid": "0x00",
        "block": str(block),
        "blkdiff": _TXNDIFF,
        "cascadelevels": 32,
        "superparents": [
            {"difficulty": 0, "count": 1, "parent": chain.hashes[block]},
            {"difficulty": 1, "count": 1, "parent": chain.hashes[max(1, block - 1)]},
            {"difficulty": 31, "count": 30, "parent": "0x00"},
        ],
        "magic": {
            "currentmaxtxpowsize": "65536",
            "currentmaxkissvmops": "1024",
            "currentmaxtxn": "256",
            "currentmintxpowwork": _DIFFICULTY,
            "desiredmaxtxpowsize": "65536",
            "desiredmaxkissvmops": "1024",
            "desiredmaxtxn": "256",
            "desiredmintxpowwork": _DIFFICULTY,
        },
        "mmr": h("mmr", block),
        "total": TOTAL_SUPPLY,
        "customhash": "0x00",
        "txbodyhash": h("body", txpowid),
        "nonce": "0",
        "timemilli": str(millis),
        "date": java_date(millis),
    }


def _empty_txn() -> dict[str, Any]:
    return {"inputs": [], "outputs": [], "state": [], "linkhash": "0x00", "transactionid": Txn().transactionid()}


def txpow_json(chain: Chain, txpowid: str, txn: Txn) -> dict[str, Any]:
    """A TxPoW as ``send``, ``tokencreate`` and ``txnpost`` print it."""
    millis = now_ms()
    body = {
        "prng": h("prng", txpowid),
        "txndiff": _TXNDIFF,
        "txn": txn_json(txn),
        "witness": witness_json(txn),
        "burntxn": _empty_txn(),
        "burnwitness": {"signatures": [], "mmrproofs": [], "scripts": []},
        "txnlist": [],
    }
    out: dict[str, Any] = {
        "txpowid": txpowid,
        "isblock": False,
        "istransaction": False,
        "superblock": -1,
        "size": 0,
        "burn": 0,
        "header": _header(chain, txpowid, millis),
        "hasbody": True,
        "body": body,
    }
    out["size"] = len(javajson.dumps(out)) // 2
    return out


def block_txpow(chain: Chain, block: dict[str, Any]) -> dict[str, Any]:
    """The TxPoW of a new block, as ``NEWBLOCK`` carries it (Main.java: ``{"txpow": …}``)."""
    out = txpow_json(chain, block["hash"], Txn())
    out["isblock"] = True
    out["header"]["block"] = block["block"]
    return out
