from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin
from maxima import services
from maxima.models import InboundEvent, NodeState, OutboundMessage


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    staff_may_delete = True  # as before the kernel's copy: staff may delete these rows
    list_display = ("id", "received_at", "application", "status", "attempts", "size", "short_sender", "short_error")
    list_filter = ("status", "application")
    search_fields = ("msgid", "sender", "application")
    exclude = ("data",)  # the payload is the sender's business; staff see its size
    readonly_fields = [f.name for f in InboundEvent._meta.fields if f.name != "data"]
    actions = ("retry",)
    date_hierarchy = "received_at"

    @admin.display(description="sender")
    def short_sender(self, obj: InboundEvent) -> str:
        return obj.sender[-16:]

    @admin.display(description="error")
    def short_error(self, obj: InboundEvent) -> str:
        return obj.last_error[:80]

    @admin.action(description="Process the selected failed or ignored events again")
    def retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = sum(services.inbound_retry(event_id=event_id) for event_id in queryset.values_list("id", flat=True))
        self.message_user(request, f"{count} event(s) queued again.", messages.SUCCESS)


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    staff_may_delete = True  # as before the kernel's copy: staff may delete these rows
    list_display = (
        "id",
        "created_at",
        "application",
        "status",
        "attempts",
        "uncounted",
        "next_attempt_at",
        "size",
        "short_error",
    )
    list_filter = ("status", "application")
    search_fields = ("destination", "idempotency_key", "msgid")
    exclude = ("payload",)
    readonly_fields = [f.name for f in OutboundMessage._meta.fields if f.name != "payload"]
    actions = ("retry", "cancel")

    @admin.display(description="error")
    def short_error(self, obj: OutboundMessage) -> str:
        return obj.last_error[:80]

    @admin.action(description="Send the selected failed or cancelled messages again")
    def retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = sum(services.outbound_retry(message_id=i) for i in queryset.values_list("id", flat=True))
        self.message_user(request, f"{count} message(s) queued again.", messages.SUCCESS)

    @admin.action(description="Cancel the selected queued messages")
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = sum(services.outbound_cancel(message_id=i) for i in queryset.values_list("id", flat=True))
        self.message_user(request, f"{count} message(s) cancelled.", messages.SUCCESS)


@admin.register(NodeState)
class NodeStateAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "checked_at", "last_ok_at", "block", "version", "address_resolves", "address_dark_since")
    readonly_fields = [f.name for f in NodeState._meta.fields]
