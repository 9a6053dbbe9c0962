"""``mds``: list, install, uninstall, permission, pending, accept and deny (fixtures 191-201; commands/mds/mds.java)."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from simnet import javajson
from simnet.commands import CommandError, Params, Reply
from simnet.mds import Mds, MdsError

if TYPE_CHECKING:
    from simnet.node import SimNode


def _mds(node: "SimNode") -> Mds:
    if node.mds is None:
        raise CommandError("MDS is not enabled on this node (start simnet with an MDS password)")
    return node.mds


def _list(node: "SimNode", mds: Mds) -> dict[str, Any]:
    with mds.lock:
        dapps = [{**d.to_json(), "sessionid": mds.session_of(d.uid)} for d in mds.dapps.values()]
    return {
        "enabled": True,
        "connect": mds.url,
        "password": mds.password,
        "publicmds": False,
        "publicmdsuid": mds.public_session,
        "untrustedmdsuid": mds.untrusted_session,
        "minidapps": dapps,
    }


def _accept(mds: Mds, uid: str) -> Any:
    """Run the pending command as the node itself (no MiniDapp, so no gate) and tell the MiniDapp the result."""
    pending = mds.take_pending(uid)
    text = mds.run_command(None, pending.command)
    response = javajson.loads(text)
    status = bool(response.get("status")) if isinstance(response, dict) else False
    mds.pending_result(pending, True, status, response if isinstance(response, dict) else {})
    return response


def mds(node: "SimNode", params: Params, reply: Reply) -> None:
    manager = _mds(node)
    action = params.opt("action", "list")
    try:
        if action == "list":
            reply["response"] = _list(node, manager)
        elif action == "install":
            dapp = manager.install(Path(params.get("file")), params.opt("trust", "read"))
            reply["response"] = {"installed": dapp.to_json()}
        elif action == "uninstall":
            uid = params.get("uid")
            manager.uninstall(uid)
            reply["response"] = {"uninstalled": uid}
        elif action == "permission":
            reply["response"] = manager.set_permission(params.get("uid"), params.get("trust")).to_json()
        elif action == "pending":
            with manager.lock:
                reply["response"] = {"pending": [p.to_json() for p in manager.pending]}
        elif action == "accept":
            reply["response"] = _accept(manager, params.get("uid"))
        elif action == "deny":
            uid = params.get("uid")
            pending = manager.take_pending(uid)
            reply["response"] = f"Pending action removed : {uid}"
            manager.pending_result(pending, False, False, {})
        else:
            raise CommandError(f"Unknown action : {action}")
    except MdsError as exc:
        raise CommandError(str(exc)) from None
