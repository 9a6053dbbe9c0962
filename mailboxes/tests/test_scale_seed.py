"""The bench's scale seed (``bench/seed.py scale``: a million names and messages in bulk SQL) leaves mailboxes the
gateway's own rules accept: each seeded message counted on a shard of its mailbox, the shards' allowances summing
to the quota, and a delete and a delivery after it keeping the count exact. (It failed on every run once messages
gained their shard, and nothing else runs it.)"""

from pathlib import Path

import pytest

from mailboxes import selectors, services
from mailboxes.models import Mailbox, MailboxCounter, Message
from mns_client.protocol.mailbox import new_delivery_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres")]


def test_the_scale_seed_counts_each_message_on_a_shard_and_the_mailboxes_take_deletes_and_deliveries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: object
) -> None:
    from bench import seed

    settings.MNS_REST_SUBMISSION = True

    monkeypatch.setattr(seed, "SCALE_CACHE", tmp_path / "scale-names.tsv")  # not the repository's var/
    seed.seed_scale(5, 2 * seed.MESSAGES_PER_MAILBOX)

    boxes = list(Mailbox.objects.filter(record__name__startswith=seed.SCALE_PREFIX).order_by("id"))
    assert len(boxes) == 2
    for box in boxes:
        usage = selectors.mailbox_usage(mailbox_id=box.id)
        held = Message.objects.filter(mailbox=box)
        assert (usage.messages, usage.bytes) == (held.count(), held.count() * seed.SCALE_CIPHERTEXT_BYTES)
        assert usage.messages == seed.MESSAGES_PER_MAILBOX
        counters = MailboxCounter.objects.filter(mailbox=box)
        assert sum(c.max_messages for c in counters) == box.max_messages
        assert sum(c.max_bytes for c in counters) == box.max_bytes
        assert all(c.message_count <= c.max_messages and c.byte_count <= c.max_bytes for c in counters)

    box = boxes[0]
    services.message_delete(mailbox=box, uid=Message.objects.filter(mailbox=box).first().uid)
    stored = services.delivery_submit(
        name=box.record.name,
        delivery_id=new_delivery_id(),
        scheme="nacl-sealedbox-v1",
        ciphertext=b"\x02" * 48,
        sender_key="",
    )
    usage = selectors.mailbox_usage(mailbox_id=box.id)
    assert stored.message.mailbox_id == box.id
    assert (usage.messages, usage.bytes) == (
        seed.MESSAGES_PER_MAILBOX,
        (seed.MESSAGES_PER_MAILBOX - 1) * seed.SCALE_CIPHERTEXT_BYTES + 48,
    )
