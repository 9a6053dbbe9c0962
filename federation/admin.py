"""The federation in the admin: peers with their health and pause/resume, and read-only logs, claims and leases."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin
from federation import selectors, services
from federation.models import Claim, Lease, LogHead, Operation, Peer


class PausedFilter(admin.SimpleListFilter):
    title = "alert"
    parameter_name = "alert"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("paused", "paused (invalid operations)"), ("invalid", "sent invalid operations")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Peer]) -> QuerySet[Peer]:
        if self.value() == "paused":
            return queryset.filter(paused=True)
        if self.value() == "invalid":
            return queryset.filter(invalid_ops__gt=0)
        return queryset


@admin.register(Peer)
class PeerAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "enabled",
        "paused",
        "permanent",
        "last_heard_at",
        "lag_ops_display",
        "lag_seconds_display",
        "invalid_ops",
        "applied_ops",
        "reconciled_at",
        "api_url",
    )
    list_filter = (PausedFilter, "enabled", "permanent")
    search_fields = ("name", "identity_key", "api_url")
    # What staff say about a peer; everything else is the replication's own bookkeeping, shown read-only once the
    # peer exists and never on the add form.
    editable_fields = ("name", "identity_key", "address", "permanent", "api_url", "enabled")
    readonly_fields = (
        "paused",
        "paused_reason",
        "paused_at",
        "last_heard_at",
        "cursor",
        "remote_head",
        "caught_up_at",
        "last_pull_at",
        "pushed",
        "applied_ops",
        "invalid_ops",
        "refused_ops",
        "waiting_seq",
        "waiting_since",
        "incarnation",
        "log_position",
        "log_position_at",
        "remote_floor",
        "tombstones_to",
        "copy_floor",
        "reconciled_at",
        "reconcile_note",
        "reconcile_fetched",
        "reconcile_bytes",
        "reconcile_fetched_total",
        "reconcile_bytes_total",
        "created_at",
    )
    actions = ("pause", "resume", "reconcile")

    def get_fields(self, request: HttpRequest, obj: Peer | None = None) -> tuple[str, ...]:
        return self.editable_fields if obj is None else self.editable_fields + self.readonly_fields

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        paused = list(Peer.objects.filter(paused=True).values_list("name", flat=True))
        if paused:
            self.message_user(request, f"Paused peers (see their reason): {', '.join(paused)}", level=messages.WARNING)
        for head in LogHead.objects.filter(recovering=True):
            self.message_user(request, f"This gateway's log: {head.recovery_note}", level=messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.display(description="lag (ops)")
    def lag_ops_display(self, peer: Peer) -> int:
        return peer.lag_ops

    @admin.display(description="lag (s)")
    def lag_seconds_display(self, peer: Peer) -> float:
        return round(selectors.lag_seconds(peer), 1)

    @admin.action(description="Pause the selected peers")
    def pause(self, request: HttpRequest, queryset: QuerySet[Peer]) -> None:
        done = sum(services.peer_pause(peer_id=p.id, reason=f"paused by {request.user}") for p in queryset)
        self.message_user(request, f"Paused {done} peers.")

    @admin.action(description="Reconcile with the selected peers now (fetch what they hold that this gateway lacks)")
    def reconcile(self, request: HttpRequest, queryset: QuerySet[Peer]) -> None:
        from core.queue import enqueue_now
        from federation.tasks import reconcile_peer

        for peer in queryset:
            enqueue_now(reconcile_peer, peer.id)
        self.message_user(request, f"Queued a reconciliation round with {queryset.count()} peers.")

    @admin.action(description="Resume the selected peers")
    def resume(self, request: HttpRequest, queryset: QuerySet[Peer]) -> None:
        done = sum(services.peer_resume(peer_id=p.id) for p in queryset)
        self.message_user(request, f"Resumed {done} peers.")


@admin.register(LogHead)
class LogHeadAdmin(ReadOnlyAdmin):
    """This gateway's own log: its head, its incarnation, what the last restore from a backup did, and how far it is
    compacted (the floor) and what the last compaction removed."""

    list_display = (
        "origin_short",
        "seq",
        "incarnation",
        "recovering",
        "restored_at",
        "recovered_ops",
        "recovery_note",
        "floor",
        "compacted_ops",
        "compacted_at",
        "compact_note",
    )

    @admin.display(description="origin")
    def origin_short(self, obj: LogHead) -> str:
        return f"…{obj.origin[-16:]}"


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = ("seq", "kind", "origin_short", "created_at", "outcome")
    list_filter = ("kind", "outcome")
    search_fields = ("origin",)

    @admin.display(description="origin")
    def origin_short(self, op: Operation) -> str:
        return "…" + op.origin[-16:]


@admin.register(Claim)
class ClaimAdmin(ReadOnlyAdmin):
    list_display = ("name", "status", "membership", "acks_count", "nacks_count", "expires_at", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "claim_id")

    @admin.display(description="acks")
    def acks_count(self, claim: Claim) -> int:
        return len(claim.acks)

    @admin.display(description="nacks")
    def nacks_count(self, claim: Claim) -> int:
        return len(claim.nacks)


@admin.register(Lease)
class LeaseAdmin(ReadOnlyAdmin):
    list_display = ("name", "status", "claimant_short", "expires_at", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "claim_id")

    @admin.display(description="claimant")
    def claimant_short(self, lease: Lease) -> str:
        return "…" + lease.claimant[-16:]
