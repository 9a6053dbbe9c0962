"""The admin site: Django's, with its login rate-limited per client address (staff passwords are a target)."""

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse

from core import ratelimit
from core.errors import json_error


class MNSAdminSite(admin.AdminSite):
    site_header = "MNS gateway"
    site_title = "MNS gateway admin"
    index_title = "Names, mailboxes and the Maxima link"

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        from mns_site.admin_charts import charts

        return super().index(request, {**(extra_context or {}), "mns_charts": charts()})

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if request.method == "POST":
            counted = ratelimit.hit(f"admin-login:{request.META.get('REMOTE_ADDR', '')}", window=60)
            if counted is not None and counted[0] > settings.MNS_ADMIN_LOGIN_PER_MINUTE:
                response = json_error("throttled", "Too many login attempts; wait a minute.", 429)
                response["Retry-After"] = str(int(counted[1]) + 1)
                return response
        return super().login(request, extra_context)


class MNSAdminConfig(AdminConfig):
    default_site = "mns_site.admin_site.MNSAdminSite"
