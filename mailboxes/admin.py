"""Mailboxes in the admin: counts, sizes and quota use; messages by their metadata only; staff's blocks and purges.

Staff never see a ciphertext, nor have a way to read one: the message admin never loads the column (it is deferred
and excluded), there is no change view for it, and no action exports messages. Every staff change (purge a
mailbox, block or unblock a sender) goes through a service with a required reason and leaves an ``AuditEntry``.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin
from mailboxes import selectors, services
from mailboxes.models import AccessToken, AuditEntry, BlockedSender, Mailbox, Message
from mns_client.protocol.errors import MNSError

MODERATE_PERMISSION = "mailboxes.change_mailbox"


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text="Kept in the audit log.")


def reason_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, items: QuerySet, form: ReasonForm, action: str, verb: str
) -> TemplateResponse:
    """The intermediate page of an audited action: the selected items and the reason to give."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{verb} {model_admin.model._meta.verbose_name_plural}",
        "opts": model_admin.model._meta,
        "items": items,
        "form": form,
        "action": action,
        "verb": verb,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/mailboxes/reason.html", context)


@admin.register(Mailbox)
class MailboxAdmin(ReadOnlyAdmin):
    list_display = ("name", "short_owner", "message_count", "byte_count", "quota_use", "auto_forward", "created_at")
    list_filter = ("auto_forward", "record__status")
    search_fields = ("record__name", "=owner_key")
    list_select_related = ("record",)
    fields = (
        "record",
        "owner_key",
        "address",
        "max_messages",
        "max_bytes",
        "message_count",
        "byte_count",
        "retention_days",
        "auto_forward",
        "delete_forwarded",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ("purge",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return selectors.mailboxes_with_usage(super().get_queryset(request))

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, mailbox: Mailbox) -> int:
        return mailbox.message_count

    @admin.display(description="bytes", ordering="byte_count")
    def byte_count(self, mailbox: Mailbox) -> int:
        return mailbox.byte_count

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MODERATE_PERMISSION)

    @admin.display(description="name", ordering="record__name")
    def name(self, mailbox: Mailbox) -> str:
        return mailbox.record.name

    @admin.display(description="owner key")
    def short_owner(self, mailbox: Mailbox) -> str:
        return f"…{mailbox.owner_key[-16:]}"

    @admin.display(description="quota use")
    def quota_use(self, mailbox: Mailbox) -> str:
        messages_use = 100 * mailbox.message_count / mailbox.max_messages
        bytes_use = 100 * mailbox.byte_count / mailbox.max_bytes
        return f"{messages_use:.0f} % of messages, {bytes_use:.0f} % of bytes"

    @admin.action(description="Purge the selected mailboxes (delete every message)…", permissions=["moderate"])
    def purge(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return reason_page(self, request, queryset.select_related("record"), form, "purge", "Purge")
        for mailbox in queryset.select_related("record"):
            deleted = services.mailbox_purge(mailbox=mailbox, actor=request.user, reason=form.cleaned_data["reason"])
            self.message_user(request, f"{mailbox}: {deleted} message(s) deleted.", messages.SUCCESS)
        return None


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    """Metadata only: size, scheme, times, state. The ciphertext is never loaded."""

    # Short columns, so the list fits a 1 280 px window beside the admin's menu and filters (the scheme and the
    # sender's verification are filters; the change page shows every field in full).
    list_display = ("short_uid", "mailbox", "short_sender", "size", "state", "received")
    list_filter = ("state", "scheme", "sender_verified")
    search_fields = ("=uid", "mailbox__record__name", "=sender_key")
    list_select_related = ("mailbox__record",)
    fields = (
        "uid",
        "mailbox",
        "delivery_id",
        "sender_key",
        "sender_verified",
        "scheme",
        "size",
        "received_at",
        "expires_at",
        "state",
        "forwarded_at",
        "outbound",
    )
    readonly_fields = fields
    date_hierarchy = "received_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).defer("ciphertext")

    @admin.display(description="id", ordering="uid")
    def short_uid(self, message: Message) -> str:
        return format_html('<span title="{}">{}…</span>', message.uid, message.uid[:10])

    @admin.display(description="sender")
    def short_sender(self, message: Message) -> str:
        key = f"…{message.sender_key[-8:]}" if message.sender_key else "—"
        return key if message.sender_verified else f"{key} (REST)"

    @admin.display(description="received", ordering="received_at")
    def received(self, message: Message) -> str:
        return f"{message.received_at:%Y-%m-%d %H:%M}"


class BlockForm(forms.ModelForm):
    class Meta:
        model = BlockedSender
        fields = ("sender_key", "reason")


@admin.register(BlockedSender)
class BlockedSenderAdmin(admin.ModelAdmin):
    """Block a sender for every mailbox of this gateway (add), or unblock (the action); both audited."""

    form = BlockForm
    list_display = ("short_key", "reason", "blocked_by", "created_at")
    search_fields = ("=sender_key", "reason")
    actions = ("unblock",)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # unblocking is an audited action

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        return actions if request.user.has_perm("mailboxes.delete_blockedsender") else {}

    @admin.display(description="sender key")
    def short_key(self, blocked: BlockedSender) -> str:
        return f"…{blocked.sender_key[-16:]}"

    def save_model(self, request: HttpRequest, obj: BlockedSender, form: forms.ModelForm, change: bool) -> None:
        try:
            blocked = services.sender_block(sender_key=obj.sender_key, actor=request.user, reason=obj.reason)
        except MNSError as refused:
            raise forms.ValidationError(str(refused)) from None
        obj.pk = blocked.pk

    @admin.action(description="Unblock the selected senders…")
    def unblock(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return reason_page(self, request, queryset, form, "unblock", "Unblock")
        count = sum(
            services.sender_unblock(sender_key=key, actor=request.user, reason=form.cleaned_data["reason"])
            for key in queryset.values_list("sender_key", flat=True)
        )
        self.message_user(request, f"{count} sender(s) unblocked.", messages.SUCCESS)
        return None


@admin.register(AccessToken)
class AccessTokenAdmin(ReadOnlyAdmin):
    """Token ids and their state; the secret exists nowhere here, and the blob only the owner's node opens."""

    list_display = ("token_id", "name", "created_at", "revoked_at", "revoked_by")
    search_fields = ("=token_id", "name")
    fields = ("token_id", "name", "mailbox", "created_at", "revoked_at", "revoked_by")
    readonly_fields = fields
    actions = ("revoke",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccessToken]:
        return super().get_queryset(request).defer("blob")

    @admin.action(description="Revoke the selected access tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = sum(
            services.access_token_revoke(mailbox=token.mailbox, by=request.user.get_username())
            for token in queryset.filter(revoked_at=None).select_related("mailbox")
        )
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MODERATE_PERMISSION)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "action", "name", "actor_username", "reason", "detail")
    list_filter = ("action",)
    search_fields = ("name", "=sender_key", "actor_username")
    readonly_fields = ("at", "action", "name", "sender_key", "mailbox", "actor_username", "reason", "detail")
    fields = readonly_fields
