"""The gateway's Minima nodes: one, or a pool (``MINIMA_RPC_URL`` lists their URLs, separated by commas).

The first node of the list is the **identity node**: its Maxima key is the gateway's identity (the ``gateway`` of
the statements it holds, the key peers know it by) and its address is the one the gateway publishes
(``MNS_MAXIMA_ADDRESS``, or its p2pidentity). Every node of the pool posts its MAXIMA events to the same hook, so
whatever any of them receives lands in the one inbox. Sends are spread over the pool (``send_node``): a message to a
user (application ``mns``) may leave from any reachable node whose key supervision has learnt, because the user side
accepts any key the gateway lists in ``/.well-known/mns.json`` (``maxima.pool``); a message to a peer gateway
(``mns-sync``) always leaves from the identity node, the one key peers know. The node of each send is picked by the
message's id and its attempt, so the pool shares the load evenly (each node has one send pipeline, simnet's
``SendTiming`` and ``maxima.timing``) and a retry goes to the next node: a node that is down delays its messages by
one backoff, not until it is back. Supervision records what it learns of node ``n`` (from 1) in ``NodeState`` row
``n``.
"""

import time

from django.conf import settings

from core.errors import DomainError
from maxima.models import NodeState
from mns_client.protocol.mailbox import APPLICATION as USER_APPLICATION
from mns_client.protocol.rpc import MinimaRPC

# Applications whose recipients accept a message from any node of the pool (the user side, see above).
SPREAD_APPLICATIONS = frozenset({USER_APPLICATION})
# How long a process trusts what supervision last wrote about which nodes are reachable.
REACHABLE_CACHE_SECONDS = 10.0
_reachable: tuple[float, str, tuple[int, ...]] = (0.0, "", ())


def node_urls() -> list[str]:
    """The RPC URLs of the gateway's nodes, the identity node first (none without a node)."""
    return settings.MINIMA_RPC_URL.split(",") if settings.MINIMA_RPC_URL else []


def require_node() -> list[str]:
    """The nodes' URLs; a 503 ``node_not_configured`` when there is none."""
    urls = node_urls()
    if not urls:
        raise DomainError("node_not_configured", "This gateway has no Minima node configured.", status=503)
    return urls


def node_client(*, timeout: float | None = None, node: int = 1) -> MinimaRPC:
    """The RPC client for node ``node`` of this gateway (1, the identity node, unless said), as configured."""
    urls = require_node()
    return MinimaRPC(
        urls[node - 1],
        password=settings.MINIMA_RPC_PASSWORD or None,
        timeout=timeout or settings.MINIMA_RPC_TIMEOUT,
    )


def send_node(*, message_id: int, attempt: int, application: str) -> int:
    """The node that sends this attempt of this message: the identity node for what only it may send, else one of
    the reachable nodes by turns (the message's id plus its attempt, so a retry moves to the next node)."""
    count = len(node_urls())
    if count <= 1 or application not in SPREAD_APPLICATIONS:
        return 1
    usable = _usable_nodes(count)
    return usable[(message_id + attempt) % len(usable)]


def _usable_nodes(count: int) -> tuple[int, ...]:
    """The identity node, and the other nodes that supervision found reachable with a known key (the key is
    published in the pool: a node whose key nobody could know yet must not send to users)."""
    global _reachable
    checked_at, urls, nodes = _reachable
    if time.monotonic() - checked_at > REACHABLE_CACHE_SECONDS or urls != settings.MINIMA_RPC_URL:
        ready = NodeState.objects.filter(pk__gt=1, pk__lte=count, reachable=True).exclude(publickey="")
        nodes = (1, *sorted(ready.values_list("pk", flat=True)))
        _reachable = (time.monotonic(), settings.MINIMA_RPC_URL, nodes)
    return nodes


def pool_keys() -> list[str]:
    """The Maxima keys of the pool's other nodes, as supervision last learnt them (published with the identity)."""
    count = len(node_urls())
    rows = NodeState.objects.filter(pk__gt=1, pk__lte=count).exclude(publickey="").order_by("pk")
    return list(rows.values_list("publickey", flat=True))


def hook_url() -> str:
    """Where the nodes post their webhook: the secret path on this gateway."""
    return f"{settings.MNS_HOOK_BASE_URL.rstrip('/')}/maxima/hook/{settings.MAXIMA_HOOK_SECRET}/"


def node_health() -> str:
    """The node part of ``/api/v1/health``: the identity node's block and version, or the failure."""
    return _one_node_health(1)


def pool_health() -> str:
    """The ``pool`` part of ``/api/v1/health`` (a gateway with more than one node): each other node by its number,
    its block and version; raises (degraded: the identity node still sends everything) when one does not answer."""
    parts, failed = [], []
    for node in range(2, len(node_urls()) + 1):
        try:
            parts.append(f"node {node}: {_one_node_health(node)}")
        except Exception as exc:  # one node's failure is reported by its number, the others still checked
            failed.append(f"node {node}: {exc}")
    if failed:
        raise RuntimeError("; ".join(failed + parts))
    return "; ".join(parts)


def has_pool() -> bool:
    return len(node_urls()) > 1


def _one_node_health(node: int) -> str:
    status = node_client(timeout=3, node=node).status()
    return f"block {(status.get('chain') or {}).get('block', '?')}, version {status.get('version', '?')}"
