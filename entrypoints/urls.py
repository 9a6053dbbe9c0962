from django.urls import path

from entrypoints import views

app_name = "entrypoints"

urlpatterns = [
    path("entry-points", views.EntryPointsView.as_view(), name="entry-points"),
]
