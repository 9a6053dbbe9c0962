from django.apps import AppConfig


class TransparencyConfig(AppConfig):
    name = "transparency"
    verbose_name = "Transparency (the directory's Merkle roots)"

    def ready(self) -> None:
        from core import health
        from maxima.routing import register_type
        from registry import published
        from transparency import handlers, selectors, services

        register_type("mns-sync", "root", handlers.root)
        # A lookup's answer carries the name's inclusion proof against the root the chain published.
        published.register_annotation("transparency", services.lookup_proof)
        health.register(
            "transparency",
            selectors.agreement_check,
            critical=False,
            applies=selectors.has_roots,
            report=selectors.agreement_report,
        )
