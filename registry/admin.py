"""The registry in the admin: staff search and moderate names, but never edit a record's keys or statements.

Every change goes through a service with a required reason and leaves an ``AuditEntry`` (who, when, why):
actions on selected names (reserve a released one, unreserve, suspend, restore) ask for the reason on an
intermediate page, and "Reserve a name" (the changelist's button) reserves a name nobody holds yet.
"""

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from core.admin import ReadOnlyAdmin
from core.errors import DomainError
from mns_client.protocol.errors import MNSError
from registry import services
from registry.models import AuditEntry, NameRecord, StatementRecord

MODERATE_PERMISSION = "registry.change_namerecord"


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text="Kept in the audit log.")


class ReserveForm(ReasonForm):
    name = forms.CharField(max_length=128, help_text="Any spelling: it is normalised.")
    field_order = ["name", "reason"]


class StatementInline(admin.TabularInline):
    model = StatementRecord
    fields = ("seq", "op", "received_at", "source", "statement", "signature")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("seq",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class AuditInline(admin.TabularInline):
    model = AuditEntry
    fields = ("at", "action", "actor_username", "reason", "status_before", "status_after")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(NameRecord)
class NameRecordAdmin(ReadOnlyAdmin):
    # Keys and statements are the owner's, and the statement chain is kept for ever: staff act through the actions.
    list_display = ("name", "status", "short_owner", "seq", "status_changed_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("name", "=owner_key", "=box_key")
    readonly_fields = [field.name for field in NameRecord._meta.fields]
    inlines = (StatementInline, AuditInline)
    actions = ("suspend", "restore", "reserve", "unreserve")
    change_list_template = "admin/registry/namerecord/change_list.html"

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MODERATE_PERMISSION)

    @admin.display(description="owner key")
    def short_owner(self, record: NameRecord) -> str:
        return f"…{record.owner_key[-16:]}" if record.owner_key else "—"

    @admin.action(description="Suspend the selected names…", permissions=["moderate"])
    def suspend(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._with_reason(request, queryset, "suspend", services.name_suspend, "Suspend")

    @admin.action(description="Restore the selected suspended names…", permissions=["moderate"])
    def restore(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._with_reason(request, queryset, "restore", services.name_restore, "Restore")

    @admin.action(description="Reserve the selected released names…", permissions=["moderate"])
    def reserve(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._with_reason(request, queryset, "reserve", services.name_reserve, "Reserve")

    @admin.action(description="Unreserve the selected reserved names…", permissions=["moderate"])
    def unreserve(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._with_reason(request, queryset, "unreserve", services.name_unreserve, "Unreserve")

    def _with_reason(
        self, request: HttpRequest, queryset: QuerySet, action: str, service: Callable[..., object], verb: str
    ) -> HttpResponse | None:
        """The intermediate page: ask for the reason, then call the service once per selected name."""
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._apply(request, queryset, service, verb, form.cleaned_data["reason"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} names",
            "opts": self.model._meta,
            "records": queryset,
            "form": form,
            "action": action,
            "verb": verb,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/registry/namerecord/reason.html", context)

    def _apply(
        self, request: HttpRequest, queryset: QuerySet, service: Callable[..., object], verb: str, reason: str
    ) -> None:
        done = 0
        for name in queryset.values_list("name", flat=True):
            try:
                service(name=name, actor=request.user, reason=reason)
            except MNSError as refused:
                self.message_user(request, f"Not done for {name}: {_describe(refused)}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb}: {done} name(s) done.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        reserve = self.admin_site.admin_view(self.reserve_view)
        return [path("reserve/", reserve, name="registry_namerecord_reserve"), *super().get_urls()]

    def reserve_view(self, request: HttpRequest) -> HttpResponse:
        """Reserve a name nobody holds yet (the changelist's "Reserve a name" button)."""
        if not self.has_moderate_permission(request):
            raise PermissionDenied
        form = ReserveForm(request.POST or None)
        if form.is_bound and form.is_valid():
            try:
                record = services.name_reserve(
                    name=form.cleaned_data["name"], actor=request.user, reason=form.cleaned_data["reason"]
                )
            except MNSError as refused:
                form.add_error("name", _describe(refused))
            else:
                self.message_user(request, f"{record.name} is reserved.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:registry_namerecord_changelist"))
        context = {**self.admin_site.each_context(request), "title": "Reserve a name", "opts": self.model._meta}
        return TemplateResponse(request, "admin/registry/namerecord/reserve.html", {**context, "form": form})


def _describe(error: MNSError) -> str:
    return error.detail if isinstance(error, DomainError) else str(error)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "name", "action", "actor_username", "reason", "status_before", "status_after")
    list_filter = ("action",)
    search_fields = ("name", "actor_username", "reason")
    readonly_fields = [field.name for field in AuditEntry._meta.fields]
    date_hierarchy = "at"
