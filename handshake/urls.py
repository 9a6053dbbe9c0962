from django.urls import path

from handshake import views

app_name = "handshake"

urlpatterns = [
    path("handshakes", views.ChallengesView.as_view(), name="challenges"),
    path("handshakes/<str:challenge_id>", views.ChallengeView.as_view(), name="challenge"),
    path("handshakes/<str:challenge_id>/session", views.SessionPickupView.as_view(), name="pickup"),
    path("session", views.CurrentSessionView.as_view(), name="session"),
]
