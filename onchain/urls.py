from django.urls import path

from onchain import views

urlpatterns = [
    path("hook/<str:secret>/", views.coin_hook, name="onchain-hook"),
]
