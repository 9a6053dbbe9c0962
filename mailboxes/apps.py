from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes"

    def ready(self) -> None:
        from core import fastpath
        from mailboxes import handlers, replication, views
        from mailboxes.services import mailbox_hand_over, owner_address_seen
        from maxima.routing import on_reply_address, register_batch, register_type
        from maxima.services import on_outbound_sent
        from registry.services import register_owner_change

        register_type("mns", "deliver", handlers.deliver_received)
        register_batch("mns", "deliver", handlers.deliveries_received)
        on_outbound_sent("forward:", handlers.forward_sent)
        on_reply_address(lambda key, address: owner_address_seen(owner_key=key, address=address))
        replication.register()
        register_owner_change(lambda record, previous: mailbox_hand_over(record=record, previous_owner=previous))
        # A mailbox's list of messages and the fetch of one are answered before DRF (the same answer, one statement).
        fastpath.register_admitted("mailboxes:messages", views.messages_early, arguments=("name",))
        fastpath.register_admitted("mailboxes:message", views.message_early, arguments=("name", "uid"))
