from django.urls import path

from bench import views

urlpatterns = [
    path("bare-json", views.bare_json),
    path("bare-insert", views.bare_insert),
    path("maxima-hook/<str:secret>/", views.maxima_hook_processed),
]
