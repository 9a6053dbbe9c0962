from django.contrib import admin

from core.models import Heartbeat


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "at", "host", "pid")
    readonly_fields = ("name", "at", "host", "pid")

    def has_add_permission(self, request: object) -> bool:
        return False
