"""The mailbox's rows that the registration flow (``registration.services``) writes: what a registration asked
for, and the mailbox opened once the name is confirmed."""

import logging

from django.conf import settings
from django.utils import timezone

from federation import services as federation
from mailboxes.models import Mailbox, Registration
from mailboxes.services.common import address_check
from mailboxes.services.counters import counters_lock
from mailboxes.services.tokens import access_token_issue
from registry import services as registry_services
from registry.models import NameRecord

logger = logging.getLogger(__name__)


def registration_record(*, challenge_id: str, record: NameRecord, address: str, source: str) -> Registration:
    """Keep what a registration asked for (where the mailbox forwards to) with its ``register`` challenge."""
    return Registration.objects.create(
        challenge_id=challenge_id, record=record, address=address_check(address), source=source
    )


def mailbox_open(*, record: NameRecord, owner_key: str, address: str) -> Mailbox:
    """The mailbox of a name just confirmed for ``owner_key``, with a new access token queued to its address.

    A mailbox left from the name's previous owner is deleted with its messages; the owner's own one is kept (its
    address updated when one is given)."""
    mailbox = Mailbox.objects.select_for_update(no_key=True).filter(record=record).first()
    if mailbox is not None and mailbox.owner_key != owner_key:
        logger.info("deleting the mailbox of %s left by its previous owner", record.name)
        counters_lock([mailbox.id])  # the lock order of ``counters``, before its shards go with it
        mailbox.delete()
        mailbox = None
    if mailbox is None:
        mailbox = Mailbox.objects.create(
            record=record,
            owner_key=owner_key,
            address=address,
            max_messages=settings.MNS_MAILBOX_MAX_MESSAGES,
            max_bytes=settings.MNS_MAILBOX_MAX_BYTES,
        )
        counters_lock([mailbox.id])  # makes its counter shards, its quota split among them
    elif address:
        Mailbox.objects.filter(id=mailbox.id).update(address=address, updated_at=timezone.now())
        mailbox.address = address
    access_token_issue(mailbox=mailbox)
    return mailbox


def mailbox_hand_over(*, record: NameRecord, previous_owner: str) -> Mailbox | None:
    """A name changed owner by an accepted transfer (``registry.services.register_owner_change``): the old owner's
    mailbox is deleted here with every message in it (sealed to the old box key or the old owner's Maxima key:
    never listed to the new owner), its access token with it. The new owner's home gateway (the accept's
    ``gateway``) opens it an empty mailbox, with a token sent to its key, and announces it to the peers as a
    registration does; a replica gets that mailbox from the home's ``mailbox`` op.

    Runs in the transaction that applied the accept, after its ``statement`` op, so the peers apply them in order.
    """
    left = Mailbox.objects.filter(record=record).exclude(owner_key=record.owner_key)
    counters_lock(left.values_list("id", flat=True))  # the lock order of ``counters``, before the shards go too
    deleted, _ = left.delete()
    if deleted:
        logger.info("deleted the mailbox of %s: the name was transferred to another owner", record.name)
    if not record.gateways or record.gateways[0] != federation.me():
        return None
    mailbox = mailbox_open(record=record, owner_key=record.owner_key, address="")
    replicas = federation.replicas_for_new_mailbox()
    registry_services.name_replicas_set(name=record.name, gateways=replicas)
    federation.op_append(
        kind="mailbox",
        payload={"name": record.name, "owner": mailbox.owner_key, "address": mailbox.address, "replicas": replicas},
    )
    return mailbox
