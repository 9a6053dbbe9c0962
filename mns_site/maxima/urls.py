from django.urls import path

from mns_site.maxima import views

urlpatterns = [
    path("hook/<str:secret>/", views.webhook, name="maxima-hook"),
]
