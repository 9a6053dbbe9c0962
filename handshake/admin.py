"""Challenges and sessions in the admin: state, purpose, times and attempts, never a code, verifier or token.

Staff revoke sessions (the selected ones, or every session of the selected sessions' names); nothing else is
editable. Search by the exact name.
"""

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from core.admin import ReadOnlyAdmin
from handshake import services
from handshake.models import Answer, Challenge, Session
from registry.models import NameRecord

REVOKE_PERMISSION = "handshake.change_session"


class ChallengeStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(state, state) for state in ("pending", "verified", "expired", "failed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now, pending = timezone.now(), Q(status=Challenge.Status.PENDING)
        awaiting_network = Q(  # Challenge.awaiting_network: answered, the network's claim of the name still open
            purpose="register",
            status=Challenge.Status.VERIFIED,
            pickup_until__isnull=True,
            session_issued_at__isnull=True,
        )
        filters = {
            "pending": (pending & Q(expires_at__gt=now)) | awaiting_network,
            "expired": pending & Q(expires_at__lte=now),
            "verified": Q(status=Challenge.Status.VERIFIED) & ~awaiting_network,
        }
        if self.value() in filters:
            return queryset.filter(filters[self.value()])
        return queryset.filter(status=self.value()) if self.value() else queryset


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(state, state) for state in ("active", "expired", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now, unrevoked = timezone.now(), Q(revoked_at__isnull=True)
        filters = {
            "active": unrevoked & Q(expires_at__gt=now),
            "expired": unrevoked & Q(expires_at__lte=now),
            "revoked": ~unrevoked,
        }
        return queryset.filter(filters[self.value()]) if self.value() in filters else queryset


class AnswerInline(admin.TabularInline):
    model = Answer
    fields = ("received_at", "short_sender", "outcome", "reason", "msgid")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="sender")
    def short_sender(self, answer: Answer) -> str:
        return f"…{answer.sender[-16:]}"


@admin.register(Challenge)
class ChallengeAdmin(ReadOnlyAdmin):
    staff_may_delete = True  # as before the kernel's copy: staff may delete these rows
    list_display = ("short_id", "name", "purpose", "state", "attempts", "created_at", "expires_at", "answered_at")
    list_filter = (ChallengeStateFilter, "purpose")
    search_fields = ("=record__name",)
    list_select_related = ("record",)
    fields = (
        "id",
        "name",
        "purpose",
        "state",
        "failure_reason",
        "attempts",
        "max_attempts",
        "owner_key",
        "client_address",
        "created_at",
        "expires_at",
        "answered_at",
        "pickup_until",
        "session_issued_at",
    )
    readonly_fields = fields
    inlines = (AnswerInline,)
    date_hierarchy = "created_at"

    @admin.display(description="id")
    def short_id(self, challenge: Challenge) -> str:
        return f"{challenge.id[:8]}…"

    @admin.display(description="name", ordering="record__name")
    def name(self, challenge: Challenge) -> str:
        return challenge.record.name

    @admin.display(description="state")
    def state(self, challenge: Challenge) -> str:
        return challenge.state()


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    staff_may_delete = True  # as before the kernel's copy: staff may delete these rows
    list_display = ("id", "name", "purpose", "state", "created_at", "expires_at", "revoked_at", "revoked_by")
    list_filter = (SessionStateFilter, "purpose")
    search_fields = ("=record__name",)
    list_select_related = ("record",)
    fields = (
        "name",
        "purpose",
        "state",
        "owner_key",
        "created_from",
        "created_at",
        "expires_at",
        "revoked_at",
        "revoked_by",
    )
    readonly_fields = fields
    actions = ("revoke", "revoke_mailbox")
    date_hierarchy = "created_at"

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVOKE_PERMISSION)

    @admin.display(description="name", ordering="record__name")
    def name(self, session: Session) -> str:
        return session.record.name

    @admin.display(description="state")
    def state(self, session: Session) -> str:
        return session.state()

    @admin.action(description="Revoke the selected sessions", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        by = request.user.get_username()
        count = sum(services.session_revoke(session=session, by=by) for session in queryset)
        self.message_user(request, f"{count} session(s) revoked.", messages.SUCCESS)

    @admin.action(description="Revoke every session of the selected sessions' names", permissions=["revoke"])
    def revoke_mailbox(self, request: HttpRequest, queryset: QuerySet) -> None:
        by = request.user.get_username()
        records = NameRecord.objects.filter(id__in=queryset.values("record_id"))
        count = sum(services.sessions_revoke_for_record(record=record, by=by) for record in records)
        self.message_user(request, f"{count} session(s) of {len(records)} name(s) revoked.", messages.SUCCESS)
