"""Federation's services, by job: ``peers`` (who they are, heard, paused), ``oplog`` (this gateway's own log:
append, number, push, pull), ``replication`` (applying a peer's ops), ``compaction`` (the logs' floors), ``claims``
(new names across the membership) and ``kinds`` (the op kinds, registered by the apps that own them). Callers import
the functions from here."""

from federation.services.claims import (
    NameSpace,
    Outcomes,
    claim_allows_confirm,
    claim_answered,
    claim_finished,
    claim_received,
    claim_start,
    claims_expire,
    hold_lose,
    register_name_space,
    register_outcomes,
)
from federation.services.compaction import CompactReport, compact
from federation.services.kinds import Invalid, Skip, Wait
from federation.services.oplog import (
    OpInsert,
    op_append,
    op_append_sql,
    op_appended,
    op_sequence,
    op_wire,
    ops_append_sql,
    ops_batch_sent,
    pull_received,
    pull_request,
    push_to_peer,
    replicas_for_new_mailbox,
)
from federation.services.peers import (
    invalid_count,
    peer_heard,
    peer_lag_sample,
    peer_pause,
    peer_remove,
    peer_resume,
    peer_upsert,
    self_key,
)
from federation.services.questions import ask_received, told_received
from federation.services.relay import relayed_by
from federation.services.replication import gateways_known, me, ops_received
from federation.services.restore import (
    log_restored,
    position_received,
    restore_progress,
    where_received,
)
from federation.services.snapshots import reconcile_with_peer, snapshot_wanted

__all__ = [
    "CompactReport",
    "Invalid",
    "NameSpace",
    "OpInsert",
    "Outcomes",
    "Skip",
    "Wait",
    "ask_received",
    "claim_allows_confirm",
    "claim_answered",
    "claim_finished",
    "claim_received",
    "claim_start",
    "claims_expire",
    "compact",
    "gateways_known",
    "hold_lose",
    "invalid_count",
    "log_restored",
    "me",
    "op_append",
    "op_append_sql",
    "op_appended",
    "op_sequence",
    "op_wire",
    "ops_append_sql",
    "ops_batch_sent",
    "ops_received",
    "peer_heard",
    "peer_lag_sample",
    "peer_pause",
    "peer_remove",
    "peer_resume",
    "peer_upsert",
    "position_received",
    "pull_received",
    "pull_request",
    "push_to_peer",
    "reconcile_with_peer",
    "register_name_space",
    "register_outcomes",
    "relayed_by",
    "replicas_for_new_mailbox",
    "restore_progress",
    "self_key",
    "snapshot_wanted",
    "told_received",
    "where_received",
]
