"""The mailboxes' services, by job: ``delivery`` (store, count, receipt), ``reading`` (read, delete, expire),
``forwarding`` (option 2), ``tokens`` (the access token), ``configure`` (the owner's settings), ``staff``
(moderation), ``opening`` (the rows the registration flow writes) and ``replicas`` (copies kept for the network).
Callers import the functions from here."""

from mailboxes.services.common import MAX_SECRET_CHARS, NameStatus, State, address_check
from mailboxes.services.configure import KEEP, mailbox_configure, owner_address_seen
from mailboxes.services.counters import counters_lock, mailbox_quota_set
from mailboxes.services.delivery import (
    REFUSAL_STATUS,
    Delivery,
    DeliveryRefused,
    Stored,
    deliver_received,
    deliveries_received,
    deliveries_store,
    delivery_store,
    delivery_submit,
    message_op,
    submission_rate_key,
)
from mailboxes.services.forwarding import ForwardSummary, mailbox_forward, message_forwarded
from mailboxes.services.opening import mailbox_hand_over, mailbox_open, registration_record
from mailboxes.services.reading import mailbox_messages_expire, message_delete, messages_ack, retention_days
from mailboxes.services.replicas import mailbox_replicate, message_replicate, message_replicated_delete
from mailboxes.services.staff import mailbox_purge, sender_block, sender_unblock
from mailboxes.services.tokens import (
    access_token_authenticate,
    access_token_check_scope,
    access_token_credentials,
    access_token_issue,
    access_token_live,
    access_token_revoke,
)

__all__ = [
    "KEEP",
    "MAX_SECRET_CHARS",
    "REFUSAL_STATUS",
    "Delivery",
    "DeliveryRefused",
    "ForwardSummary",
    "NameStatus",
    "State",
    "Stored",
    "access_token_authenticate",
    "access_token_check_scope",
    "access_token_credentials",
    "access_token_issue",
    "access_token_live",
    "access_token_revoke",
    "address_check",
    "counters_lock",
    "deliver_received",
    "deliveries_received",
    "deliveries_store",
    "delivery_store",
    "delivery_submit",
    "mailbox_configure",
    "mailbox_forward",
    "mailbox_hand_over",
    "mailbox_messages_expire",
    "mailbox_open",
    "mailbox_purge",
    "mailbox_quota_set",
    "mailbox_replicate",
    "message_delete",
    "message_forwarded",
    "message_op",
    "message_replicate",
    "message_replicated_delete",
    "messages_ack",
    "owner_address_seen",
    "registration_record",
    "retention_days",
    "sender_block",
    "sender_unblock",
    "submission_rate_key",
]
