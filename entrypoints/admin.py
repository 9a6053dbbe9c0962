"""The entry points in the admin: the setup (read-only), every publication, the current list above them, and
"publish now" / "retry now" actions for staff of the publishing gateway."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from core.admin import ReadOnlyAdmin
from core.queue import enqueue_on_commit
from entrypoints import selectors, tasks
from entrypoints.models import Publication, Setup


@admin.register(Setup)
class SetupAdmin(ReadOnlyAdmin):
    list_display = ("tokenid", "script_address", "owner_key", "first_coinid", "completed_at")
    fields = (
        "token_name",
        "provisional_tokenid",
        "token_coinid",
        "tokenid",
        "owner_key",
        "script",
        "script_address",
        "first_coinid",
        "steps",
        "created_at",
        "completed_at",
    )
    readonly_fields = fields


@admin.register(Publication)
class PublicationAdmin(ReadOnlyAdmin):
    list_display = ("seq", "status", "origin", "entry_count", "block", "short_coin", "attempts", "created_at", "error")
    list_filter = ("status", "origin")
    fields = (
        "seq",
        "status",
        "origin",
        "bulletin",
        "input_coinid",
        "coinid",
        "txn_id",
        "txpowid",
        "sent_block",
        "block",
        "attempts",
        "error",
        "next_attempt_at",
        "created_at",
        "sent_at",
        "confirmed_at",
    )
    readonly_fields = fields
    actions = ["publish_now", "retry_now"]

    @admin.display(description="entries")
    def entry_count(self, publication: Publication) -> int:
        return len(publication.entries)

    @admin.display(description="coin")
    def short_coin(self, publication: Publication) -> str:
        return f"{publication.coinid[:10]}…" if publication.coinid else "-"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        current = selectors.current()
        extra = {
            "current": current,
            "current_entries": current.entries if current else [],
            "config": selectors.chain_config(),
        }
        return super().changelist_view(request, extra_context={**(extra_context or {}), **extra})

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if not request.user.has_perm("entrypoints.change_publication"):
            actions.pop("publish_now", None)
            actions.pop("retry_now", None)
        return actions

    @admin.action(description="Publish a new list now (or retry the unfinished one)")
    def publish_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        enqueue_on_commit(tasks.publish)
        self.message_user(request, "A publication was queued; it shows here as sent, then confirmed.", messages.INFO)

    @admin.action(description="Retry the selected failed publications now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.filter(status=Publication.Status.FAILED).update(next_attempt_at=timezone.now())
        enqueue_on_commit(tasks.check)
        self.message_user(request, f"{count} failed publication(s) will be retried now.", messages.INFO)
