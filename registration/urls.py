from django.urls import path

from registration import views

app_name = "registration"

urlpatterns = [
    path("mailboxes", views.MailboxesView.as_view(), name="mailboxes"),
]
