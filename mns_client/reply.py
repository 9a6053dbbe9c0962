"""How the gateway reaches this user's node: the reply address the client gives (docs/protocol.md, "Reply addresses").

``direct``   the node's ``p2pidentity`` (``Mx<MLS key>@host:port``): for a node others can connect to.
``contact``  the node's ``contact`` address (``Mx<per-host key>@<its Maxima host>``): the host relays to a node that
             cannot be reached directly (NAT, a phone). It changes with the node's hosts, so the client gives it
             afresh in every message and the gateway follows (it keeps each owner's latest).
``max``      ``MAX#<identity key>#<the node's MLS>``: resolved by the node's MLS on every send, so it survives moves;
             the MLS must answer for the key (``maxextra action:addpermanent`` on it, or a static MLS the user runs).

``auto`` (the default) probes once per node address: a node whose ``p2pidentity`` does not answer its own send, or
advertises a private host to a public gateway, answers through its ``contact``; the result is kept with the address
it was measured for and measured again when the node moves.
"""

import ipaddress
import logging

from .protocol.codecs import MaximaAddress, PermanentAddress, parse_address
from .protocol.errors import CodecError, DeliveryFailed, MNSError
from .protocol.rpc import MaximaInfo, MinimaRPC

logger = logging.getLogger(__name__)

REPLY_VIA = ("direct", "contact", "max")
REPLY_VIA_CHOICES = ("auto", *REPLY_VIA)
PROBE_APPLICATION = "mns-probe"


def reply_address(info: MaximaInfo, via: str) -> str:
    """The address to give as ``reply_to``/``address`` for ``via`` (one of ``REPLY_VIA``)."""
    if via == "contact":
        return str(parse_address(info.contact))
    if via == "max":
        return str(PermanentAddress(info.publickey, MaximaAddress.parse(info.mls)))
    if via == "direct":
        return info.p2pidentity or info.localidentity
    raise ValueError(f"reply via {via!r}: expected one of {', '.join(REPLY_VIA)}")


def detect(rpc: MinimaRPC, info: MaximaInfo, *, gateway_address: str | None = None) -> str:
    """``direct`` when the node can be reached at its ``p2pidentity``, else ``contact`` (when it has a host)."""
    if info.contact == (info.p2pidentity or info.localidentity):
        return "direct"  # no Maxima host: nothing else could reach it anyway
    if _private_to(info.p2pidentity, gateway_address) or not _answers_itself(rpc, info.p2pidentity):
        return "contact"
    return "direct"


def _answers_itself(rpc: MinimaRPC, address: str) -> bool:
    """A one-byte Maxima message from the node to its own ``p2pidentity``: does anything answer there?"""
    try:
        rpc.maxima_send(to=address, application=PROBE_APPLICATION, data=b"\x00")
    except DeliveryFailed as failed:
        logger.info("the node's p2pidentity did not answer its own probe (%s)", failed)
        return False
    except (CodecError, MNSError) as exc:
        logger.info("could not probe the node's p2pidentity (%s): assuming it answers", exc)
    return True


def _private_to(address: str, gateway_address: str | None) -> bool:
    """The node advertises a private or link-local host while the gateway's is public: the gateway cannot connect."""
    node_host, gateway_host = _host(address), _host(gateway_address)
    if node_host is None or gateway_host is None:
        return False
    return _local(node_host) and not _local(gateway_host)


def _host(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not address:
        return None
    try:
        parsed = parse_address(address)
        host = parsed.host if isinstance(parsed, MaximaAddress) else parsed.mls.host
        return ipaddress.ip_address(host)
    except (CodecError, ValueError):
        return None


def _local(host: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return host.is_private or host.is_link_local or host.is_loopback
