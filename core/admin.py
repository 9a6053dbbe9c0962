from django.contrib import admin
from django.http import HttpRequest

from core.models import Heartbeat


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the gateway writes itself: staff look, and act only through the admin's actions (which call services);
    nobody adds or edits a row by hand, nor deletes one unless the app's admin sets ``staff_may_delete`` (and
    staff hold Django's delete permission for the model). The one copy every app's admin uses."""

    staff_may_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self.staff_may_delete and super().has_delete_permission(request, obj)


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "at", "host", "pid")
    readonly_fields = ("name", "at", "host", "pid")

    def has_add_permission(self, request: object) -> bool:
        return False
