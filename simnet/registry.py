"""The commands simnet understands, with the valid parameter names of Minima 1.0.45 (unknown names are refused)."""

from simnet import cmd_chain, cmd_crypto, cmd_maxima, cmd_misc, cmd_txn
from simnet.commands import CommandSpec

_SPECS = (
    CommandSpec("status", ("debug", "complete", "clean"), cmd_chain.status),
    CommandSpec("block", (), cmd_chain.block),
    CommandSpec(
        "maxima",
        ("action", "name", "icon", "id", "to", "publickey", "application", "data", "poll", "host", "delay"),
        cmd_maxima.maxima,
    ),
    CommandSpec(
        "maxcontacts", ("action", "contact", "id", "publickey", "enable", "contactlist"), cmd_maxima.maxcontacts
    ),
    CommandSpec("maxextra", ("action", "publickey", "maxaddress", "enable", "host"), cmd_maxima.maxextra),
    CommandSpec("maxcreate", (), cmd_crypto.maxcreate),
    CommandSpec("maxsign", ("data", "privatekey"), cmd_crypto.maxsign),
    CommandSpec("maxverify", ("data", "publickey", "signature"), cmd_crypto.maxverify),
    CommandSpec("maxencrypt", ("data", "publickey"), cmd_crypto.maxencrypt),
    CommandSpec("maxdecrypt", ("data", "privatekey"), cmd_crypto.maxdecrypt),
    CommandSpec("maxmessage", ("action", "data", "publickey", "privatekey"), cmd_crypto.maxmessage),
    CommandSpec("webhooks", ("action", "hook", "filter", "enable"), cmd_misc.webhooks),
    CommandSpec("rpc", ("enable", "password", "ssl", "action", "username", "mode"), cmd_misc.rpc),
    CommandSpec("getaddress", ("createall",), cmd_chain.getaddress),
    CommandSpec("newaddress", (), cmd_chain.newaddress),
    CommandSpec("balance", ("address", "tokenid", "tokendetails", "confirmations", "megammr"), cmd_chain.balance),
    CommandSpec("newscript", ("script", "trackall", "clean"), cmd_chain.newscript),
    CommandSpec("tokens", ("tokenid", "action", "data"), cmd_chain.tokens),
    CommandSpec(
        "tokencreate",
        ("name", "amount", "decimals", "script", "state", "signtoken", "webvalidate", "burn", "mine"),
        cmd_chain.tokencreate,
    ),
    CommandSpec(
        "send",
        (
            "address",
            "amount",
            "tokenid",
            "state",
            "burn",
            "split",
            "debug",
            "dryrun",
            "mine",
            "password",
            "storestate",
            "fromaddress",
            "signkey",
            "multi",
        ),
        cmd_chain.send,
    ),
    CommandSpec(
        "coins",
        (
            "relevant",
            "sendable",
            "coinid",
            "amount",
            "address",
            "tokenid",
            "coinage",
            "checkmempool",
            "order",
            "depth",
            "state",
            "simplestate",
            "totalamount",
        ),
        cmd_chain.coins,
    ),
    CommandSpec("txncreate", ("id",), cmd_txn.txncreate),
    CommandSpec(
        "txninput",
        ("id", "coinid", "coindata", "floating", "address", "amount", "tokenid", "scriptmmr"),
        cmd_txn.txninput,
    ),
    CommandSpec("txnoutput", ("id", "amount", "address", "tokenid", "storestate"), cmd_txn.txnoutput),
    CommandSpec("txnstate", ("id", "port", "value"), cmd_txn.txnstate),
    CommandSpec(
        "txnsign",
        ("id", "publickey", "txnpostauto", "txnpostburn", "txnpostmine", "txndelete", "password"),
        cmd_txn.txnsign,
    ),
    CommandSpec("txnbasics", ("id",), cmd_txn.txnbasics),
    CommandSpec("txncheck", ("id",), cmd_txn.txncheck),
    CommandSpec("txnpost", ("id", "auto", "burn", "mine", "txndelete"), cmd_txn.txnpost),
    CommandSpec("txndelete", ("id",), cmd_txn.txndelete),
    CommandSpec("txnlist", ("id",), cmd_txn.txnlist),
)

COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in _SPECS}
