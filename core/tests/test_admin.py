"""The kernel's read-only admin, the one base every app's admin uses for rows the gateway writes itself."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory

from core.admin import ReadOnlyAdmin
from core.models import Heartbeat


def _request(*, superuser: bool, saved: bool = False) -> object:
    request = RequestFactory().get("/admin/")
    request.user = User(username=f"staff{superuser:d}", is_staff=True, is_active=True, is_superuser=superuser)
    if saved:
        request.user.save()
    return request


def test_the_read_only_admin_refuses_to_add_change_or_delete_even_to_a_superuser() -> None:
    model_admin, request = ReadOnlyAdmin(Heartbeat, admin.site), _request(superuser=True)
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request) is False
    assert model_admin.has_delete_permission(request) is False
    assert model_admin.has_view_permission(request) is True


@pytest.mark.django_db
def test_an_admin_that_lets_staff_delete_still_asks_for_the_delete_permission() -> None:
    class Deletable(ReadOnlyAdmin):
        staff_may_delete = True

    model_admin = Deletable(Heartbeat, admin.site)
    assert model_admin.has_delete_permission(_request(superuser=True)) is True
    assert model_admin.has_delete_permission(_request(superuser=False, saved=True)) is False
    assert model_admin.has_change_permission(_request(superuser=True)) is False


def test_no_app_writes_its_own_read_only_admin() -> None:
    copies = [
        type(model_admin).__module__ + "." + type(model_admin).__name__
        for model_admin in admin.site._registry.values()
        if not isinstance(model_admin, ReadOnlyAdmin)
        and type(model_admin).__dict__.keys() >= {"has_add_permission", "has_change_permission"}
        and type(model_admin).__module__.split(".")[0] not in ("django", "core")
    ]
    assert copies == []
