from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("names", views.OwnerNamesView.as_view(), name="names"),
    path("names/<str:name>", views.NameView.as_view(), name="name"),
    path("names/<str:name>/availability", views.AvailabilityView.as_view(), name="availability"),
    path("names/<str:name>/history", views.HistoryView.as_view(), name="history"),
    path("names/<str:name>/statements", views.StatementsView.as_view(), name="statements"),
]
