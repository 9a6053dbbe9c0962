from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes"

    def ready(self) -> None:
        from mailboxes import handlers, replication
        from maxima.routing import register_type
        from maxima.services import on_outbound_sent

        register_type("mns", "deliver", handlers.deliver_received)
        on_outbound_sent("forward:", handlers.forward_sent)
        replication.register()
