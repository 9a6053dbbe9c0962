from django.conf import settings

from core.errors import DomainError
from mns_client.protocol.rpc import MinimaRPC


def node_client(*, timeout: float | None = None) -> MinimaRPC:
    """The RPC client for this gateway's own Minima node, as configured."""
    if not settings.MINIMA_RPC_URL:
        raise DomainError("node_not_configured", "This gateway has no Minima node configured.", status=503)
    return MinimaRPC(
        settings.MINIMA_RPC_URL,
        password=settings.MINIMA_RPC_PASSWORD or None,
        timeout=timeout or settings.MINIMA_RPC_TIMEOUT,
    )


def hook_url() -> str:
    """Where the node posts its webhook: the secret path on this gateway."""
    return f"{settings.MNS_HOOK_BASE_URL.rstrip('/')}/maxima/hook/{settings.MAXIMA_HOOK_SECRET}/"


def node_health() -> str:
    """The node part of ``/api/v1/health``: its block and version, or the failure."""
    status = node_client(timeout=3).status()
    return f"block {(status.get('chain') or {}).get('block', '?')}, version {status.get('version', '?')}"
