"""Federation tasks: thin, by id, safe to run twice; the beat task only fans out."""

from celery import shared_task
from django.conf import settings

from core.queue import enqueue_now
from federation import selectors, services


@shared_task(name="federation.push", ignore_result=True)
def push() -> int:
    """Push this gateway's new operations to every active peer (enqueued after each commit that logged one)."""
    return sum(
        services.push_to_peer(peer_id=peer_id) for peer_id in selectors.peers_active().values_list("id", flat=True)
    )


@shared_task(name="federation.push_peer", ignore_result=True)
def push_peer(peer_id: int) -> int:
    return services.push_to_peer(peer_id=peer_id)


@shared_task(name="federation.pull_peer", ignore_result=True)
def pull_peer(peer_id: int) -> bool:
    return services.pull_request(peer_id=peer_id)


@shared_task(name="federation.restore_progress", ignore_result=True)
def restore_progress() -> bool:
    return services.restore_progress()


@shared_task(name="federation.claims_expire", ignore_result=True)
def claims_expire() -> tuple[int, int]:
    return services.claims_expire()


@shared_task(name="federation.sync", ignore_result=True)
def sync() -> int:
    """Beat, every MNS_FEDERATION_SYNC_EVERY seconds: per active peer, push what it was not sent and ask for
    what we miss of its log (so a gateway that was down catches up by itself), or instead reconcile with it when it
    lags too far behind its log for a replay; and expire claims and leases.
    Then numbers the log's new ops, with or without peers, so a peer added later finds it numbered (after the
    fan-out, which must not depend on it).
    By hand: ``python manage.py shell -c "from federation.tasks import sync; sync()"``."""
    peers = list(selectors.peers_active().values_list("id", flat=True))
    far_behind = selectors.peers_far_behind()
    for peer_id in peers:
        enqueue_now(push_peer, peer_id)
        if peer_id not in far_behind:  # its log's answer would not be applied, and over Maxima it slows the snapshot
            enqueue_now(pull_peer, peer_id)
    for peer_id in far_behind:
        enqueue_now(reconcile_peer, peer_id)  # a new peer, or one back from a long outage: a snapshot, not the log
    enqueue_now(claims_expire)
    services.restore_progress()  # restored from a backup: asks, pulls, and resumes numbering when done
    services.op_sequence()
    services.peer_lag_sample(every=settings.MNS_SAMPLE_EVERY)  # for the admin's chart
    return len(peers)


@shared_task(name="federation.reconcile_peer", ignore_result=True)
def reconcile_peer(peer_id: int) -> int:
    """One reconciliation round with a peer (set reconciliation and the snapshot of what differs), bounded by the
    task's time limit; one that did not finish enqueues the next, which carries on from the smaller difference.
    (One waiting for a peer's answer over Maxima enqueues nothing: the answer's arrival does.)"""
    report = services.reconcile_with_peer(peer_id=peer_id)
    if report is not None and report.unfinished:
        enqueue_now(reconcile_peer, peer_id)  # it stopped at its time limit: the next round carries on
    return report.fetched if report is not None else 0


@shared_task(name="federation.reconcile", ignore_result=True)
def reconcile() -> int:
    """Beat, every MNS_FEDERATION_RECONCILE_EVERY seconds: an anti-entropy round with each active peer that has an
    API URL, and over Maxima with each one without that is due (MNS_FEDERATION_RECONCILE_MAXIMA_EVERY), which
    repairs anything a lost op left behind. By hand: ``python manage.py federation_reconcile``."""
    peers = selectors.peers_to_reconcile()
    for peer_id in peers:
        enqueue_now(reconcile_peer, peer_id)
    return len(peers)


@shared_task(name="federation.compact", ignore_result=True)
def compact() -> int:
    """Beat, every MNS_FEDERATION_COMPACT_EVERY seconds: compact this gateway's log and its copies of the peers'
    (tombstones kept), in short chunks; safe to run twice. By hand: ``python manage.py federation_compact``."""
    report = services.compact()
    return report.removed + report.copies_removed + report.tombstones_dropped
