from django.urls import path

from federation import views

app_name = "federation"

urlpatterns = [
    path("federation/position", views.PositionView.as_view(), name="position"),
    path("federation/roots", views.RootsView.as_view(), name="roots"),
    path("federation/reconcile", views.ReconcileView.as_view(), name="reconcile"),
    path("federation/snapshot", views.SnapshotView.as_view(), name="snapshot"),
]
