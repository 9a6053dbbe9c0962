"""The Maxima commands: maxima, maxcontacts, maxextra (fixtures 01-27, 60-69c)."""

from typing import TYPE_CHECKING, Any

from mns_client.protocol.codecs import MaximaAddress, PermanentAddress, mx_decode, to_hex
from mns_client.protocol.errors import CodecError
from simnet import contacts, javajson, p2p
from simnet.commands import CommandError, Params, Reply
from simnet.message import MaximaMessage, seal_package
from simnet.util import now_ms

if TYPE_CHECKING:
    from simnet.node import SimNode

SEND_MISSING = "MUST specify to|id|publickey, application and data for a send command"


# ------------------------------------------------------------------------------------------------- parameters


def hex_param(text: str) -> bytes:
    """``new MiniData(hex)``: ``0x`` optional, an odd digit count gets a leading zero."""
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if len(digits) % 2:
        digits = "0" + digits
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise CommandError(f"java.lang.NumberFormatException: Invalid HEX : {text}") from None


def data_param(params: Params, name: str = "data") -> bytes:
    """Data given as ``0x`` hex, a JSON object (its JSON text) or plain text (UTF-8), as maxima send/maxsign take it."""
    raw = params.raw(name)
    if not isinstance(raw, str):
        return javajson.dumps(raw).encode("utf-8")
    text = params.get(name)
    if text[:2] in ("0x", "0X"):
        return hex_param(text)
    return text.encode("utf-8")


def key_param(params: Params, name: str) -> bytes:
    text = params.get(name)
    if text.startswith("Mx"):
        try:
            return mx_decode(text)
        except CodecError:
            raise CommandError("java.lang.ArithmeticException: Minima Address Checksum Error") from None
    return hex_param(text)


def split_to(fullto: str) -> tuple[bytes, str, int]:
    """``maxima.createSendMessage``: key before ``@``, host up to the first ``:``, port after it."""
    at, colon = fullto.find("@"), fullto.find(":")
    if at == -1 or colon == -1 or colon < at:
        raise CommandError(f"java.lang.StringIndexOutOfBoundsException: begin 0, end {at}, length {len(fullto)}")
    key_text, host, port_text = fullto[:at], fullto[at + 1 : colon], fullto[colon + 1 :]
    try:
        port = int(port_text)
    except ValueError:
        raise CommandError(f'java.lang.NumberFormatException: For input string: "{port_text}"') from None
    if key_text.startswith("Mx"):
        try:
            return mx_decode(key_text), host, port
        except CodecError:
            raise CommandError("java.lang.ArithmeticException: Minima Address Checksum Error") from None
    return hex_param(key_text), host, port


# ------------------------------------------------------------------------------------------------- maxima


def _info(node: "SimNode") -> dict[str, Any]:
    return {
        "name": node.name,
        "icon": node.icon,
        "publickey": node.publickey_hex,
        "mxpublickey": node.mx_publickey(),
        "staticmls": node.static_mls is not None,
        "mls": node.mls_address,
        "localidentity": node.address,
        "p2pidentity": node.address,
        "contact": node.contact_address,
        "logs": False,
        "poll": node.poll_count(),
    }


def _recipient(node: "SimNode", params: Params) -> str:
    if params.has("to"):
        fullto = params.get("to")
        return resolve_permanent(node, fullto) if fullto.startswith("MAX#") else fullto
    if params.has("publickey"):
        key = params.get("publickey")
        if key.upper() == node.publickey_hex.upper():
            return node.contact_address
        contact = contacts.find(node, key)
        if contact is None:
            raise CommandError(f"No Contact found for publickey : {key}")
        return contact.currentaddress
    ident = params.integer("id")
    contact = next((c for c in node.contacts if c.id == ident), None)
    if contact is None:
        raise CommandError(f"No Contact found for ID : {ident}")
    return contact.currentaddress


def resolve_permanent(node: "SimNode", fullto: str) -> str:
    """The current address behind a ``MAX#`` address; ``MAX address invalid..`` while its MLS does not know it
    (fixture 177: the gap after the MLS restarted)."""
    result = getaddress(node, fullto)
    if not result["success"]:
        raise CommandError("MAX address invalid..")
    return result["mlsresponse"]["address"]


def _send(node: "SimNode", params: Params, reply: Reply) -> None:
    if not (params.has("to") or params.has("id") or params.has("publickey")):
        raise CommandError(SEND_MISSING)
    if not (params.has("application") and params.has("data")):
        raise CommandError(SEND_MISSING)
    key, host, port = split_to(_recipient(node, params))
    message = node.new_message(key, params.get("application"), data_param(params))
    out: dict[str, Any] = {**message.to_json(), "msgid": message.msgid}
    poll, delay = params.boolean("poll"), params.integer("delay", 0)
    out["poll"], out["delay"] = poll, delay
    if poll:
        node.queue_poll(message, host, port, delay)
        out["message"] = "Message added to send stack.."
    else:
        out.update(_deliver_now(node, message, host, port))
    reply["response"] = out


def _deliver_now(node: "SimNode", message: MaximaMessage, host: str, port: int) -> dict[str, Any]:
    """A synchronous send: it waits its turn in the node's send pipeline, then for the receiver's answer."""
    start = now_ms()
    package = seal_package(message, node.identity_key)
    sealed = now_ms()
    try:
        answer, in_pipeline = node.send_package(message, package, host, port)
    except p2p.TransportError as exc:
        return {"delivered": False, "error": str(exc)}
    created = sealed + round(in_pipeline * 1000)
    out: dict[str, Any] = {"delivered": answer == p2p.RESPONSE_OK, "creation": created - start}
    out["sending"] = max(now_ms() - created, 0)
    if answer != p2p.RESPONSE_OK:
        out["error"] = p2p.answer_error(answer)
    return out


def _sendall(node: "SimNode", params: Params, reply: Reply) -> None:
    application, data = params.get("application"), data_param(params)
    delay = params.integer("delay", 0)
    for contact in list(node.contacts):
        key, host, port = split_to(contact.currentaddress)
        node.queue_poll(node.new_message(key, application, data), host, port, delay)
    reply["response"] = "Message added to send stack for all contacts"


def maxima(node: "SimNode", params: Params, reply: Reply) -> None:
    action = params.opt("action", "info")
    if action == "info":
        reply["response"] = _info(node)
    elif action == "send":
        _send(node, params, reply)
    elif action == "hosts":
        reply["response"] = {"hosts": node.hosts_json()}
    elif action == "setname":
        node.name = params.get("name").replace('"', "").replace("'", "").replace(";", "")
        reply["response"] = {"name": node.name}
    elif action == "seticon":
        node.icon = params.get("icon")
        reply["response"] = {"icon": node.icon}
    elif action == "refresh":
        for contact in list(node.contacts):
            node.send_async(lambda c=contact: contacts.safe_send(node, c.currentaddress, node.contact_info(False)))
        reply["response"] = "Update message sent to all contacts"
    elif action == "sendall":
        _sendall(node, params, reply)
    elif action == "new":
        raise CommandError("Not Supported yet..")
    else:
        raise CommandError(f"Unknown Action : {action}")


# ------------------------------------------------------------------------------------------------- maxcontacts


def maxcontacts(node: "SimNode", params: Params, reply: Reply) -> None:
    action = params.opt("action", "list")
    if action == "list":
        with node.lock:
            listed = [node.contact_json(c) for c in node.contacts]
        reply["response"] = {"allowallcontacts": node.allow_all_contacts, "contacts": listed}
    elif action == "add":
        _add_contact(node, params, reply)
    elif action == "remove":
        ident = params.integer("id")
        contacts.remove_contact(node, ident)
        reply["response"] = {"removed": str(ident)}
    elif action == "search":
        reply["response"] = {"contact": node.contact_json(_search(node, params))}
    elif action == "clear":
        for contact in list(node.contacts):
            contacts.remove_contact(node, contact.id)
        reply["response"] = {"contacts": []}
    else:
        raise CommandError(f"Unknown action : {action}")


def _add_contact(node: "SimNode", params: Params, reply: Reply) -> None:
    from simnet.node import MAX_CONTACTS

    if len(node.contacts) >= MAX_CONTACTS:
        raise CommandError(f"Too many contacts.. max {MAX_CONTACTS}")
    address = params.get("contact")
    if address.startswith("MAX#"):
        address = resolve_permanent(node, address)
    try:
        MaximaAddress.parse(address)
    except CodecError:
        raise CommandError(f"Invalid contact address : {address}") from None
    reply["response"] = {"maxima": contacts.add_contact(node, address)}


def _search(node: "SimNode", params: Params) -> Any:
    if params.has("publickey"):
        found = contacts.find(node, params.get("publickey"))
    elif params.has("id"):
        ident = params.integer("id")
        found = next((c for c in node.contacts if c.id == ident), None)
    else:
        raise CommandError("Must specify id or publickey")
    if found is None:
        raise CommandError("MaxContact not found")
    return found


# ------------------------------------------------------------------------------------------------- maxextra


def getaddress(node: "SimNode", maxaddress: str) -> dict[str, Any]:
    """Ask the MLS named in a ``MAX#`` address for the key's current address (fixtures 66, 67, 69c)."""
    try:
        permanent = PermanentAddress.parse(maxaddress)
    except CodecError:
        raise CommandError(f"Invalid MAX address : {maxaddress}") from None
    identity = to_hex(permanent.identity)
    answer = node.lookup_via_mls(identity, permanent.mls)
    result: dict[str, Any] = {"publickey": identity, "mls": str(permanent.mls), "success": bool(answer)}
    result["mlsresponse"] = answer if answer else "{}"
    return result


def _staticmls(node: "SimNode", params: Params) -> dict[str, Any]:
    host = params.get("host")
    if host == "clear":
        node.static_mls = None
    elif not (host.startswith("Mx") and "@" in host and ":" in host):
        raise CommandError("Invalid MLS address : MUST be of type Mx..@host:port")
    else:
        node.static_mls = host
    node.register_with_mls_async()
    return {"staticmls": node.static_mls is not None, "mls": node.mls_address}


def _permanent(node: "SimNode", action: str, params: Params) -> Any:
    if action == "listpermanent":
        return list(node.permanent)
    if action == "clearpermanent":
        node.permanent.clear()
        return "Cleared all Permanent Maxima IDs"
    key = params.get("publickey")
    if action == "addpermanent":
        if key not in node.permanent:
            node.permanent.append(key)
        return f"Added Permanent Maxima ID : {key}"
    if key in node.permanent:
        node.permanent.remove(key)
    return f"Removed Permanent Maxima ID : {key}"


def _mlsinfo(node: "SimNode") -> dict[str, Any]:
    with node.lock:
        service = [
            {"publickey": key, "mlsallowed": {"maximaidentity": entry.address, "valid": list(entry.allowed)}}
            for key, entry in node.mls_registry.items()
        ]
    return {"mlsservice": service}


def _allowed(node: "SimNode", action: str, params: Params) -> Any:
    if action == "allowallcontacts":
        node.allow_all_contacts = params.boolean("enable", True)
        return {"allowallcontacts": node.allow_all_contacts}
    if action == "addallowed":
        node.allowed_contacts.append(params.get("publickey"))
    elif action == "clearallowed":
        node.allowed_contacts.clear()
    return {"allowed": list(node.allowed_contacts)}


def maxextra(node: "SimNode", params: Params, reply: Reply) -> None:
    action = params.get("action")
    if action == "staticmls":
        reply["response"] = _staticmls(node, params)
    elif action in ("addpermanent", "removepermanent", "listpermanent", "clearpermanent"):
        reply["response"] = _permanent(node, action, params)
    elif action == "getaddress":
        reply["response"] = getaddress(node, params.get("maxaddress"))
    elif action == "mlsinfo":
        reply["response"] = _mlsinfo(node)
    elif action in ("allowallcontacts", "addallowed", "listallowed", "clearallowed"):
        reply["response"] = _allowed(node, action, params)
    else:
        raise CommandError(f"Unknown action : {action}")
