"""Escrow shards of a mailbox's quota (``MailboxCounter``): the few rows a mailbox's use is counted on.

Each shard holds an allowance, a share of the quota; the allowances of a mailbox's shards sum to its quota, and a
check constraint keeps each shard within its own, so the mailbox as a whole never passes its quota. A delivery
counts on one shard, so concurrent deliveries to one mailbox mostly take different rows and do not wait for each
other's commit. When its shard's allowance is used up but the mailbox has room, the unused allowance of the others
is moved over (``room_find``); a delete gives the room back to the shard that counted the message.

The lock order, which keeps deadlocks impossible: a transaction that touches more than one counters row, or that
runs inside a larger transaction (a Maxima batch's ``deliveries_store``, a peer's replicated batch, deletes,
replicas), first takes the rows of the mailboxes it touches, in id order, and then their shards in shard order,
before it writes or deletes any of their messages (``counters_lock``). Only a delivery's single autocommit
statement (``delivery._write_at_once`` outside a transaction, and ``delivery._submit_at_once``, which is the same
statement with its read in front) takes one shard without its mailbox's row; while it
holds that shard it waits on nobody who could wait for it: every transaction that writes the mailbox's messages
holds all its shards already (so a conflicting message insert can only be another such statement), and the KEY
SHARE lock its message's foreign key takes on the mailbox's row does not conflict with the NO KEY UPDATE locks
taken here.
"""

import random
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Sum

from core.errors import DomainError
from mailboxes.models import Mailbox, MailboxCounter, Message


@dataclass
class Counters:
    """A mailbox's quota and its shards, in shard order, as ``counters_lock`` found them (locked)."""

    mailbox_id: int
    max_messages: int
    max_bytes: int
    shards: list[MailboxCounter]


def shard_pick() -> int:
    """The shard a delivery tries first: any, so that concurrent deliveries spread over the shards."""
    return random.randrange(settings.MNS_MAILBOX_COUNTER_SHARDS)


def counters_lock(mailbox_ids: Iterable[int]) -> dict[int, Counters]:
    """Lock the rows of these mailboxes in id order, then their shards in (mailbox, shard) order, in the caller's
    transaction; a mailbox without shards yet gets ``MNS_MAILBOX_COUNTER_SHARDS`` of them, its quota split among
    them. The rows are taken FOR NO KEY UPDATE: a single-statement delivery's message insert (its foreign key's KEY
    SHARE) never waits for them while it holds a shard."""
    ids = sorted(set(mailbox_ids))
    mailboxes = Mailbox.objects.filter(id__in=ids).order_by("id").select_for_update(no_key=True)
    locked = {
        mailbox_id: Counters(mailbox_id, max_messages, max_bytes, [])
        for mailbox_id, max_messages, max_bytes in mailboxes.values_list("id", "max_messages", "max_bytes")
    }
    shards = MailboxCounter.objects.filter(mailbox_id__in=locked).order_by("mailbox_id", "shard")
    for shard in shards.select_for_update(no_key=True):
        locked[shard.mailbox_id].shards.append(shard)
    for counters in locked.values():
        if not counters.shards:
            counters.shards = _shards_made(counters)
    return locked


def _shards_made(counters: Counters) -> list[MailboxCounter]:
    """The shards of a mailbox that has none yet (made before shards, or by a bulk seed), counting what it holds
    already: each message on the shard it names (one beyond this mailbox's shards is moved to shard 0), the quota's
    unused room split among them (none, when the mailbox holds more than its quota: it only shrinks then)."""
    number = settings.MNS_MAILBOX_COUNTER_SHARDS
    counters.shards = [MailboxCounter(mailbox_id=counters.mailbox_id, shard=shard) for shard in range(number)]
    held = Message.objects.filter(mailbox_id=counters.mailbox_id)
    held.filter(shard__gte=number).update(shard=0)
    for shard, count, size in held.values_list("shard").annotate(Count("id"), Sum("size")).order_by("shard"):
        counters.shards[shard].message_count, counters.shards[shard].byte_count = count, size or 0
    if not _allowances_split(counters, target=0, messages=0, size=0):
        for shard in counters.shards:
            shard.max_messages, shard.max_bytes = shard.message_count, shard.byte_count
    MailboxCounter.objects.bulk_create(counters.shards)
    return counters.shards


def room_find(counters: Counters, *, size: int, wanted: int) -> int | None:
    """The shard to count one more message of ``size`` bytes on, with the locks of ``counters_lock``: the
    ``wanted`` one if it has room, else another that has, else the wanted one once the unused allowance of all
    shards was moved to it; None when the mailbox as a whole has no room for it."""
    shards = counters.shards
    chosen = shards[wanted % len(shards)]
    if _fits(chosen, size):
        return chosen.shard
    other = next((shard for shard in shards if _fits(shard, size)), None)
    if other is not None:
        return other.shard
    if not _allowances_split(counters, target=shards.index(chosen), messages=1, size=size):
        return None
    MailboxCounter.objects.bulk_update(shards, ["max_messages", "max_bytes"])
    return chosen.shard


def counted(counters: Counters, *, shard: int, size: int) -> None:
    """Keep ``counters`` (locked by ``counters_lock``) as the database has them after a message of ``size`` bytes
    was counted on ``shard`` by the caller's own write."""
    counted_on = next(row for row in counters.shards if row.shard == shard)
    counted_on.message_count += 1
    counted_on.byte_count += size


def room_take(*, mailbox_id: int, size: int) -> int | None:
    """Lock the mailbox's counters (``counters_lock``) and count a message of ``size`` bytes on a shard with room;
    returns that shard, or None (nothing changed) when the mailbox has no room."""
    shard = room_find(counters_lock([mailbox_id])[mailbox_id], size=size, wanted=shard_pick())
    if shard is not None:
        MailboxCounter.objects.filter(mailbox_id=mailbox_id, shard=shard).update(
            message_count=F("message_count") + 1, byte_count=F("byte_count") + size
        )
    return shard


def room_give_back(*, mailbox_id: int, deleted: Iterable[tuple[int, int]]) -> None:
    """Uncount deleted messages, each ``(shard, size)``, on the shards that counted them, in shard order; the
    caller holds the mailbox's counters (``counters_lock``)."""
    by_shard: dict[int, tuple[int, int]] = {}
    for shard, size in deleted:
        count, total = by_shard.get(shard, (0, 0))
        by_shard[shard] = (count + 1, total + size)
    for shard, (count, total) in sorted(by_shard.items()):
        MailboxCounter.objects.filter(mailbox_id=mailbox_id, shard=shard).update(
            message_count=F("message_count") - count, byte_count=F("byte_count") - total
        )


def mailbox_quota_set(*, mailbox: Mailbox, max_messages: int, max_bytes: int) -> None:
    """Give the mailbox a new quota, split among its shards; 409 ``quota_below_use`` (nothing changed) when it
    holds more than that already."""
    with transaction.atomic():
        counters = counters_lock([mailbox.id])[mailbox.id]
        counters.max_messages, counters.max_bytes = max_messages, max_bytes
        if not _allowances_split(counters, target=0, messages=0, size=0):
            raise DomainError("quota_below_use", "The mailbox holds more than that quota already.", status=409)
        MailboxCounter.objects.bulk_update(counters.shards, ["max_messages", "max_bytes"])
        Mailbox.objects.filter(id=mailbox.id).update(max_messages=max_messages, max_bytes=max_bytes)
    mailbox.max_messages, mailbox.max_bytes = max_messages, max_bytes


def _fits(shard: MailboxCounter, size: int) -> bool:
    return shard.message_count < shard.max_messages and shard.byte_count + size <= shard.max_bytes


def _allowances_split(counters: Counters, *, target: int, messages: int, size: int) -> bool:
    """Set each shard's allowance (unsaved) to its use plus an even share of the mailbox's unused quota, the shard
    at index ``target`` taking ``messages`` and ``size`` more first (and what does not divide evenly); False,
    nothing changed, when the unused quota is less than that."""
    shards = counters.shards
    free_messages = counters.max_messages - sum(shard.message_count for shard in shards) - messages
    free_bytes = counters.max_bytes - sum(shard.byte_count for shard in shards) - size
    if free_messages < 0 or free_bytes < 0:
        return False
    for index, shard in enumerate(shards):
        first = (messages + free_messages % len(shards), size + free_bytes % len(shards)) if index == target else (0, 0)
        shard.max_messages = shard.message_count + free_messages // len(shards) + first[0]
        shard.max_bytes = shard.byte_count + free_bytes // len(shards) + first[1]
    return True
