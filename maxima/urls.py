from django.urls import path

from maxima import views

urlpatterns = [
    path("hook/<str:secret>/", views.webhook, name="maxima-hook"),
]
