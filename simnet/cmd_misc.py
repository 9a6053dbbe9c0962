"""webhooks (fixtures 70-79) and rpc (fixture 95)."""

from typing import TYPE_CHECKING

from mns_client.protocol.codecs import to_hex
from simnet.commands import CommandError, Params, Reply

if TYPE_CHECKING:
    from simnet.node import SimNode


def webhooks(node: "SimNode", params: Params, reply: Reply) -> None:
    """Hooks are stored as ``FILTER#url``; ``remove`` compares that whole string (fixtures 76, 77)."""
    action = params.opt("action", "list")
    with node.lock:
        if action == "add":
            entry = f"{params.opt('filter', '')}#{params.get('hook')}"
            if entry not in node.hooks:
                node.hooks.append(entry)
        elif action == "remove":
            entry = params.get("hook")
            if entry in node.hooks:
                node.hooks.remove(entry)
        elif action == "clear":
            node.hooks.clear()
        elif action != "list":
            raise CommandError(f"Unknown action : {action}")
        reply["response"] = {"webhooks": list(node.hooks)}


def rpc(node: "SimNode", params: Params, reply: Reply) -> None:
    """``rpc enable:true password:<pw>`` sets a runtime password that a restart forgets (fixtures 95, 98b)."""
    if params.has("password"):
        node.runtime_password = params.get("password")
    elif params.has("enable") and params.boolean("enable"):
        node.runtime_password = None
    password = node.password()
    reply["response"] = {
        "enabled": True,
        "port": node.rpc_port,
        "ssl": False,
        "sslpubkey": to_hex(node.identity_public),
        "authenticate": bool(password),
        "username": "minima",
        "password": "***",
        "rpcusers": 0,
    }
