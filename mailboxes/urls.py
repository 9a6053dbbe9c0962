from django.urls import path

from mailboxes import views

app_name = "mailboxes"

urlpatterns = [
    path("mailboxes/<str:name>", views.MailboxSettingsView.as_view(), name="mailbox"),
    path("mailboxes/<str:name>/messages", views.MessagesView.as_view(), name="messages"),
    path("mailboxes/<str:name>/messages/ack", views.AckView.as_view(), name="ack"),
    path("mailboxes/<str:name>/messages/<str:uid>", views.MessageView.as_view(), name="message"),
    path("mailboxes/<str:name>/forward", views.ForwardView.as_view(), name="forward"),
    path("mailboxes/<str:name>/access-token", views.AccessTokenView.as_view(), name="access-token"),
    path("mailboxes/<str:name>/access-token/rotate", views.AccessTokenRotateView.as_view(), name="rotate"),
    path("receipts/<str:delivery_id>", views.ReceiptView.as_view(), name="receipt"),
    path("names/<str:name>/messages", views.SubmitView.as_view(), name="submit"),
]
