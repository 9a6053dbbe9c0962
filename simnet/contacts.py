"""Maxima contacts: the ``**maxima_contact_ctrl**`` exchange (REFERENCE §4, fixtures 60-62, 74).

Adding a contact sends our details with ``intro:true``; the other node, while ``allowallcontacts`` is on, adds us
and answers with its own details (``intro:false``), which completes our entry. Every change posts a
``MAXIMACONTACTS`` event with ``{}`` and refreshes our registration at our MLS (contacts may look us up there).
"""

import logging
from typing import TYPE_CHECKING, Any

from mns_client.protocol.codecs import MaximaAddress
from mns_client.protocol.errors import CodecError
from simnet import javajson, p2p
from simnet.util import now_ms

if TYPE_CHECKING:
    from simnet.node import Contact, SimNode

logger = logging.getLogger(__name__)

_EXTRA_KEYS = ("name", "icon", "minimaaddress", "topblock", "checkblock", "checkhash", "mls")


def send_contact_message(node: "SimNode", address: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a contact-control message to ``address``; returns the message JSON with ``delivered`` (fixture 60)."""
    from simnet.node import CONTACT_APPLICATION

    target = MaximaAddress.parse(address)
    message = node.new_message(target.key, CONTACT_APPLICATION, javajson.dumps(payload).encode("utf-8"))
    result = {**message.to_json(), "msgid": message.msgid}
    try:
        answer = node.deliver(message, target.host, target.port)
    except p2p.TransportError as exc:
        return {**result, "delivered": False, "error": str(exc)}
    result["delivered"] = answer == p2p.RESPONSE_OK
    if answer != p2p.RESPONSE_OK:
        result["error"] = p2p.answer_error(answer)
    return result


def add_contact(node: "SimNode", address: str) -> dict[str, Any]:
    with node.lock:
        node.pending_adds += 1
    return send_contact_message(node, address, node.contact_info(intro=True))


def find(node: "SimNode", publickey: str) -> "Contact | None":
    return next((c for c in node.contacts if c.publickey.upper() == publickey.upper()), None)


def _accepts(node: "SimNode", sender: str, payload: dict[str, Any]) -> bool:
    if find(node, sender) is not None or node.allow_all_contacts or sender in node.allowed_contacts:
        return True
    return not payload.get("intro") and node.pending_adds > 0


def _upsert(node: "SimNode", sender: str, payload: dict[str, Any]) -> bool:
    from simnet.node import MAX_CONTACTS, Contact

    with node.lock:
        if not _accepts(node, sender, payload):
            return False
        contact = find(node, sender)
        if contact is None:
            if len(node.contacts) >= MAX_CONTACTS:
                logger.info("simnet node %s: contact list full", node.index)
                return False
            contact = Contact(node.next_contact_id, sender, "", "", 0)
            node.next_contact_id += 1
            node.contacts.append(contact)
        if not payload.get("intro") and node.pending_adds > 0:
            node.pending_adds -= 1
        contact.currentaddress = str(payload.get("address", ""))
        contact.myaddress = node.contact_address
        contact.lastseen = now_ms()
        contact.extradata = {key: payload.get(key, "") for key in _EXTRA_KEYS}
        return True


def remove_contact(node: "SimNode", contact_id: int) -> None:
    """Remove locally and tell the other side, which removes us too."""
    with node.lock:
        contact = next((c for c in node.contacts if c.id == contact_id), None)
        if contact is None:
            return
        node.contacts.remove(contact)
    payload = {**node.contact_info(intro=False), "delete": True}
    node.send_async(lambda: safe_send(node, contact.currentaddress, payload))
    node.post_event("MAXIMACONTACTS", {})
    node.register_with_mls_async()


def safe_send(node: "SimNode", address: str, payload: dict[str, Any]) -> None:
    try:
        send_contact_message(node, address, payload)
    except CodecError:
        logger.info("simnet node %s: bad contact address", node.index)


def receive_contact_message(node: "SimNode", sender: str, payload: dict[str, Any]) -> None:
    """Handle an incoming contact-control message from the identity key ``sender``."""
    if payload.get("delete"):
        with node.lock:
            contact = find(node, sender)
            if contact is not None:
                node.contacts.remove(contact)
    elif not _upsert(node, sender, payload):
        return
    node.post_event("MAXIMACONTACTS", {})
    node.register_with_mls()
    node.save()
    if payload.get("intro") and not payload.get("delete"):
        safe_send(node, str(payload.get("address", "")), node.contact_info(intro=False))
