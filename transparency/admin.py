"""The directory's roots in the admin: this gateway's own, the ones its peers signed (kept as evidence), the ones
read from the chain; every list says above it which gateways' signed roots disagree, and the evidence rows."""

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse

from core.admin import ReadOnlyAdmin
from mns_client.protocol.codecs import to_hex
from transparency import selectors
from transparency.models import ChainRoot, DirectoryRoot, PeerRoot


class _FlagsAdmin(ReadOnlyAdmin):
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        for found in selectors.disagreements():
            evidence = f" (evidence: peer root #{found.evidence_id})" if found.evidence_id else ""
            messages.warning(request, f"{found.sentence()}: {found.root} instead of {found.expected}{evidence}")
        return super().changelist_view(request, extra_context)

    @admin.display(description="root")
    def root_hex(self, obj: Any) -> str:
        return to_hex(bytes(obj.root))


@admin.register(DirectoryRoot)
class DirectoryRootAdmin(_FlagsAdmin):
    list_display = ("cutoff", "size", "root_hex", "rehashed", "compute_ms", "computed_at")
    fields = ("cutoff", "size", "root_hex", "signer_key", "rehashed", "compute_ms", "computed_at")
    readonly_fields = fields


@admin.register(PeerRoot)
class PeerRootAdmin(_FlagsAdmin):
    list_display = ("peer_name", "cutoff", "size", "root_hex", "agrees", "received_at")
    list_filter = ("peer_name",)
    fields = ("peer_name", "peer_key", "cutoff", "size", "root_hex", "message", "received_at")
    readonly_fields = fields

    @admin.display(description="agrees with the majority", boolean=True)
    def agrees(self, obj: PeerRoot) -> bool | None:
        agreed = selectors.agreed_at(obj.cutoff)
        return None if agreed is None else bytes(obj.root) == agreed.root.root


@admin.register(ChainRoot)
class ChainRootAdmin(_FlagsAdmin):
    list_display = ("bulletin_seq", "cutoff", "size", "root_hex", "seen_at")
    fields = ("bulletin_seq", "cutoff", "size", "root_hex", "signers", "seen_at")
    readonly_fields = fields
