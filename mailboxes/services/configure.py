"""The owner's settings of a mailbox: where it forwards, its sender rules, its retention."""

import logging
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from core.errors import DomainError
from core.rows import no_key_lock
from mailboxes import selectors
from mailboxes.models import Mailbox, SenderRule
from mailboxes.services.common import address_check
from maxima.services import outbound_redirect
from mns_client.protocol.codecs import canonical_public_key
from mns_client.protocol.errors import CodecError
from mns_client.protocol.mailbox import MailboxMessageInvalid, address_text

logger = logging.getLogger(__name__)


KEEP: Any = object()  # a setting the request did not mention


def mailbox_configure(
    *,
    mailbox: Mailbox,
    address: str = KEEP,
    retention_days: int | None = KEEP,
    auto_forward: bool = KEEP,
    delete_forwarded: bool = KEEP,
    blocked: list[str] = KEEP,
    allowed: list[str] = KEEP,
) -> Mailbox:
    """Change the owner's settings; what is not given stays. ``blocked``/``allowed`` replace those lists.

    Refused, changing nothing: an address that is not a Maxima address, a retention outside 1 … the gateway's
    (``None`` means the gateway's), automatic forwarding without an address, a key on both lists, lists longer
    than ``MNS_MAILBOX_MAX_SENDER_RULES`` together. New retention applies to messages delivered from now on.
    """
    with transaction.atomic():
        mailbox = Mailbox.objects.select_for_update(no_key=True).select_related("record").get(id=mailbox.id)
        if address is not KEEP:
            moved_from = mailbox.address
            mailbox.address = address_check(address) if address else ""
            if moved_from and mailbox.address:
                outbound_redirect(old=moved_from, new=mailbox.address)
        if retention_days is not KEEP:
            mailbox.retention_days = _retention(retention_days)
        if auto_forward is not KEEP:
            mailbox.auto_forward = bool(auto_forward)
        if delete_forwarded is not KEEP:
            mailbox.delete_forwarded = bool(delete_forwarded)
        if mailbox.auto_forward and not mailbox.address:
            raise DomainError("address_missing", "Automatic forwarding needs the mailbox's address.", status=409)
        _rules_replace(mailbox, blocked=blocked, allowed=allowed)
        mailbox.save()
    return mailbox


def _moved(db: BaseDatabaseWrapper) -> str:
    """The owner's mailboxes kept at another address than the one a message gave, locked (FOR NO KEY UPDATE: a
    delivery's foreign-key check does not wait for it; SQLite has one writer at a time). Read for every ``mns``
    message that names a reply_to, nearly always to find none: one statement kept prepared, where the ORM's query
    was compiled every time (a fifth of the inbound worker's CPU under the handshake's load, issue #18)."""
    table = Mailbox._meta.db_table
    where = "owner_key = %s AND address <> '' AND address <> %s"
    return f"SELECT id, address FROM {table} WHERE {where} ORDER BY id{no_key_lock(db)}"  # noqa: S608  (locked in one order)


def owner_address_seen(*, owner_key: str, address: str) -> int:
    """A message Maxima authenticated as ``owner_key``'s gave ``address`` as where to answer it: the owner's
    mailboxes follow (a node that restarted on another port or network, or is now reached through its host), and
    what the outbox still holds for the old address (forwards, the access token, verdicts) goes to the new one.
    A mailbox whose owner cleared its address stays without one. Returns how many mailboxes moved."""
    try:
        key, address = canonical_public_key(owner_key), address_text(address)
    except (CodecError, MailboxMessageInvalid):
        return 0
    moved = 0
    db = connections[DEFAULT_DB_ALIAS]
    with transaction.atomic(savepoint=False), db.cursor() as cursor:  # the lock lasts until the updates are made
        db.execute_prepared(cursor, _moved(db), [key, address])
        for mailbox_id, old in cursor.fetchall():
            Mailbox.objects.filter(id=mailbox_id).update(address=address, updated_at=timezone.now())
            outbound_redirect(old=old, new=address)
            moved += 1
    if moved:
        logger.info("the owner of %s mailbox(es) moved; their address follows", moved)
    return moved


def _rules_replace(mailbox: Mailbox, *, blocked: list[str], allowed: list[str]) -> None:
    current = selectors.sender_lists(mailbox=mailbox)
    lists = {
        SenderRule.List.BLOCK: current["blocked"] if blocked is KEEP else _keys(blocked, "blocked"),
        SenderRule.List.ALLOW: current["allowed"] if allowed is KEEP else _keys(allowed, "allowed"),
    }
    both = set(lists[SenderRule.List.BLOCK]) & set(lists[SenderRule.List.ALLOW])
    if both:
        raise DomainError("sender_on_both_lists", "A sender key cannot be both blocked and allowed.")
    if sum(len(keys) for keys in lists.values()) > settings.MNS_MAILBOX_MAX_SENDER_RULES:
        raise DomainError(
            "too_many_senders", f"A mailbox lists at most {settings.MNS_MAILBOX_MAX_SENDER_RULES} senders in all."
        )
    if blocked is KEEP and allowed is KEEP:
        return
    SenderRule.objects.filter(mailbox=mailbox).delete()
    SenderRule.objects.bulk_create(
        SenderRule(mailbox=mailbox, sender_key=key, list=kind) for kind, keys in lists.items() for key in keys
    )


def _keys(values: list[str], field: str) -> list[str]:
    keys = []
    for value in values:
        try:
            keys.append(canonical_public_key(value))
        except CodecError:
            raise DomainError(
                "invalid", "The request has invalid fields.", fields={field: [f"Not a key: {value[:40]}"]}
            ) from None
    return list(dict.fromkeys(keys))


def _retention(days: int | None) -> int | None:
    if days is not None and not 1 <= days <= settings.MNS_RETENTION_DAYS:
        raise DomainError("retention_invalid", f"Retention is 1 to {settings.MNS_RETENTION_DAYS} days on this gateway.")
    return days
