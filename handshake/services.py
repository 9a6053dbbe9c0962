"""The handshake (DESIGN §4): issue a challenge, judge the owner's node's answer, open and check sessions.

1. ``challenge_issue``: a random code for one name and purpose, stored hashed, with the hash of the client's
   verifier; the client shows the code to the owner's node.
2. ``answer_receive`` (a Maxima ``mns``/``handshake`` message): verified only if the sender is the key the
   challenge was issued for, the code matches, and a conditional UPDATE moves the challenge from ``pending``
   (unexpired, under the attempt limit) to ``verified``. Wrong answers count against the limit. The verdict goes
   back to the owner's node through the outbox.
3. ``session_open``: whoever holds the verifier picks the session up, once.
4. ``session_authorise``: the check every endpoint that takes a session makes (the registry's statements view
   calls it directly; DRF views use ``handshake.authentication``).

Refusals raise ``DomainError`` before writing anything, except the attempt count and the answer's log entry,
which are the point of counting.
"""

import hmac
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from core.errors import DomainError
from core.rows import insert_fields, insert_params
from handshake import selectors
from handshake.models import Answer, Challenge, Session
from maxima.routing import Ignored, InboundMessage
from maxima.services import outbound_enqueue
from mns_client.protocol.codecs import canonical_public_key
from mns_client.protocol.handshake import (
    APPLICATION,
    PURPOSES,
    SECRET_HASH_RE,
    HandshakeMessageInvalid,
    Result,
    new_code,
    new_token,
    secret_hash,
    secret_matches,
)
from mns_client.protocol.handshake import Answer as AnswerMessage
from mns_client.protocol.names import normalise
from registry import selectors as registry_selectors
from registry.models import NameRecord

logger = logging.getLogger(__name__)

Status = Challenge.Status
NameStatus = NameRecord.Status
# A session opened for the key (purpose) also satisfies the values: "manage" is every change of the record.
IMPLIED_PURPOSES: dict[str, frozenset[str]] = {"manage": frozenset({"rotate", "delete"})}
# The verdict is only useful while the session can be picked up: a few tries, not the outbox's full budget.
RESULT_MAX_ATTEMPTS = 5
MAX_TOKEN_CHARS = 128


# -------------------------------------------------------------------------------------------------- challenges


@dataclass(frozen=True)
class IssuedChallenge:
    challenge: Challenge
    code: str  # shown once, to the client that asked; only its hash is stored
    gateway_address: str


def challenge_issue(
    *, name: str, purpose: str, verifier_hash: str, client_address: str | None = None
) -> IssuedChallenge:
    """A new challenge for ``purpose`` on ``name``, answerable by the name's owner key only.

    ``register`` needs the name held as pending (the key is the one in the pending registration); every other
    purpose needs an active name. Refused, creating nothing: ``gateway_not_ready`` (503, this gateway does not
    know its own Maxima address yet), ``name_not_found``/``name_pending``/``name_not_pending``/``name_suspended``,
    and ``too_many_challenges`` (429) past ``MNS_HANDSHAKE_OPEN_PER_NAME`` open challenges of the name from one
    client. The name's row is locked while counting, so concurrent requests cannot overshoot the limit.
    """
    if purpose not in PURPOSES:
        raise DomainError("purpose_invalid", f"The purpose must be one of {', '.join(PURPOSES)}.")
    if not isinstance(verifier_hash, str) or not SECRET_HASH_RE.fullmatch(verifier_hash):
        raise DomainError("verifier_hash_invalid", "verifier_hash is the lower-case hex SHA-256 of the verifier.")
    name, client = normalise(name), _ip_or_none(client_address)
    code, now = new_code(), timezone.now()
    with transaction.atomic():
        record, address = selectors.issue_read(name=name)
        if not address:
            raise DomainError("gateway_not_ready", "This gateway does not know its Maxima address yet.", status=503)
        challenge = Challenge(
            record=record,
            purpose=purpose,
            owner_key=_answering_key(record, name, purpose),
            code_hash=secret_hash(code),
            verifier_hash=verifier_hash,
            max_attempts=settings.MNS_HANDSHAKE_MAX_ATTEMPTS,
            client_address=client,
            expires_at=now + timedelta(seconds=settings.MNS_HANDSHAKE_TTL_SECONDS),
        )
        if not _insert_under_limits(challenge, now):
            raise DomainError(
                "too_many_challenges",
                f"Too many open handshakes for {name!r}; answer or let one expire first.",
                status=429,
            )
    logger.info("issued a %s handshake for %s", purpose, name)
    return IssuedChallenge(challenge=challenge, code=code, gateway_address=address)


def _insert_under_limits(challenge: Challenge, now: datetime) -> bool:
    """INSERT ``challenge`` unless its name has too many open challenges (pending and unexpired): at most
    MNS_HANDSHAKE_OPEN_PER_NAME *per client*, so a stranger cannot lock the owner out by keeping the name's quota
    full, under a total ceiling per name (20 times that) against floods. Whether it was inserted.

    One statement kept prepared, ``INSERT … SELECT … WHERE (the counts are under the limits)``, where the ORM
    compiled a count and an insert on every call (issue #18). It runs after the name's row was locked
    (``selectors.issue_read``), with a snapshot of its own, so concurrent requests cannot overshoot the limits."""
    db = connections[DEFAULT_DB_ALIAS]
    per_client = settings.MNS_HANDSHAKE_OPEN_PER_NAME
    expires_at = Challenge._meta.get_field("expires_at").get_db_prep_value(now, db)
    # the client's address bound as the row's is (on SQLite an IPv4-mapped IPv6 address is stored as ::ffff:a.b.c.d)
    client = Challenge._meta.get_field("client_address").get_db_prep_value(challenge.client_address, db)
    limits = [20 * per_client, client, per_client, challenge.record_id, expires_at]
    with db.cursor() as cursor:
        db.execute_prepared(cursor, _INSERT_UNDER_LIMITS, [*insert_params([challenge], db), *limits])
        inserted = cursor.rowcount == 1
    if inserted:
        challenge._state.adding, challenge._state.db = False, db.alias
    return inserted


_INSERT_UNDER_LIMITS = (
    f"INSERT INTO {Challenge._meta.db_table} ({', '.join(field.column for field in insert_fields(Challenge))}) "  # noqa: S608
    f"SELECT {', '.join('%s' for _ in insert_fields(Challenge))} "
    "WHERE (SELECT count(*) < %s AND count(*) FILTER (WHERE client_address = %s) < %s "
    f"FROM {Challenge._meta.db_table} WHERE record_id = %s AND status = '{Status.PENDING}' AND expires_at > %s)"
)


def _answering_key(record: NameRecord | None, name: str, purpose: str) -> str:
    if record is None:
        raise DomainError("name_not_found", f"No name {name!r} is registered here.", status=404)
    if purpose == "register":
        if record.status != NameStatus.PENDING:
            raise DomainError(
                "name_not_pending", f"The name {name!r} is {record.status}, not being registered.", status=409
            )
    elif record.status == NameStatus.PENDING:
        raise DomainError("name_pending", f"The name {name!r} is not confirmed yet.", status=409)
    elif record.status == NameStatus.SUSPENDED:
        raise DomainError("name_suspended", f"The name {name!r} is suspended by this gateway's staff.", status=403)
    elif record.status != NameStatus.ACTIVE:
        raise DomainError("name_not_found", f"Nobody holds the name {name!r}.", status=404)
    return canonical_public_key(record.owner_key)


# ------------------------------------------------------------------------------------------------------ answers


def answer_receive(*, message: InboundMessage, body: dict) -> str:
    """Judge one Maxima answer; returns ``verified`` or the reason it was refused (``duplicate``: seen already).

    Runs inside the inbound task's transaction, so the verdict, the count, the log entry and the queued reply
    commit together with the event's ``done``, or not at all. Never raises for a refusal (that would roll the
    count back); raises ``Ignored`` for what is not an answer: a malformed message or an unknown challenge.

    - From another key: counted (``wrong_sender``), and no reply: the gateway does not message strangers.
    - From the owner's key: a wrong code is counted (``code_wrong``); a right one verifies the challenge if a
      conditional UPDATE still finds it pending, unexpired and under the limit (so of two concurrent right
      answers exactly one wins, and the other is ``challenge_used``). Expired, used or failed challenges are
      refused without counting. The owner's node gets the verdict at ``reply_to``, else at its key.
    - The answer that reaches the limit fails the challenge (``too_many_attempts``), in the same UPDATE.
    """
    try:
        answer = AnswerMessage.from_dict(body)
    except HandshakeMessageInvalid as exc:
        raise Ignored(f"malformed handshake answer: {exc}") from None
    challenge = selectors.challenge_find(challenge_id=answer.challenge)
    if challenge is None:
        raise Ignored("a handshake answer for an unknown challenge")
    # No savepoint of its own: the inbound task already runs each handler in one, rolled back as a whole if this
    # raises (two round trips fewer per answer); called alone, it is its own transaction. Every refusal past this
    # point is an outcome, not an exception, so only a failure (the database, a broken completion) leaves the block.
    received_at = selectors.answer_arrived_at(message=message)
    with transaction.atomic(savepoint=False):
        if not _answer_log(challenge, message, received_at):
            return "duplicate"
        from_owner = canonical_public_key(message.sender) == challenge.owner_key
        verdict = _judge(challenge, answer, from_owner=from_owner, at=received_at)
        _answer_judged(message, verdict)
        if from_owner:
            _result_send(challenge, message, answer, verdict)
    logger.info("handshake %s answer for %s: %s", challenge.purpose, challenge.record.name, verdict)
    return verdict


def _answer_log(challenge: Challenge, message: InboundMessage, received_at: datetime) -> bool:
    """Log this message's answer (refused until judged), unless it was logged before (the same event processed
    again: then ``False``). ``INSERT … ON CONFLICT (msgid) DO NOTHING``, kept prepared: no savepoint to catch the
    duplicate, and nothing compiled (issue #18). A copy of the event processed at the same time waits here for the
    first to commit, and then finds it logged."""
    logged = Answer(
        challenge=challenge,
        msgid=message.msgid,
        sender=message.sender,
        outcome=Answer.Outcome.REFUSED,
        received_at=received_at,
    )
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        db.execute_prepared(cursor, _ANSWER_LOG, insert_params([logged], db))
        return cursor.rowcount == 1


def _answer_judged(message: InboundMessage, verdict: str) -> None:
    """Write the verdict into the answer's log entry (by its ``msgid``, unique)."""
    verified = verdict == "verified"
    outcome = Answer.Outcome.VERIFIED if verified else Answer.Outcome.REFUSED
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        db.execute_prepared(cursor, _ANSWER_JUDGED, [outcome, "" if verified else verdict, message.msgid])


_ANSWER_LOG = (
    f"INSERT INTO {Answer._meta.db_table} ({', '.join(field.column for field in insert_fields(Answer))}) "  # noqa: S608
    f"VALUES ({', '.join('%s' for _ in insert_fields(Answer))}) ON CONFLICT (msgid) DO NOTHING"
)
_ANSWER_JUDGED = f"UPDATE {Answer._meta.db_table} SET outcome = %s, reason = %s WHERE msgid = %s"  # noqa: S608


def _judge(challenge: Challenge, answer: AnswerMessage, *, from_owner: bool, at: datetime) -> str:
    if not from_owner:
        return _count(challenge, "wrong_sender", at) or "wrong_sender"
    if not secret_matches(answer.code, challenge.code_hash):
        return _count(challenge, "code_wrong", at) or _unanswerable(challenge)
    name_changed = _name_changed(challenge, at)
    if name_changed:
        return name_changed
    if not _consume(challenge, at):
        return _unanswerable(challenge)
    if not _complete(challenge):
        # The owner answered, but the network's claim of the name is still open: no session until the
        # registration completes (``pickup_open``, called by the registration flow, opens the window), so the
        # client keeps polling a ``pending`` challenge instead of picking up a session for a mailbox not there yet.
        Challenge.objects.filter(id=challenge.id).update(pickup_until=None)
        challenge.pickup_until = None
    return "verified"


def _count(challenge: Challenge, reason: str, at: datetime) -> str | None:
    """Count a wrong answer against a pending, unexpired challenge; fail it at the limit, in the same UPDATE.

    Returns ``reason``, or ``too_many_attempts`` when this answer reached the limit, or ``None`` when the challenge
    could no longer be answered (nothing counted).
    """
    at_limit = Q(attempts__gte=F("max_attempts") - 1)
    counted = Challenge.objects.filter(id=challenge.id, status=Status.PENDING, expires_at__gt=at).update(
        attempts=F("attempts") + 1,
        status=Case(When(at_limit, then=Value(Status.FAILED)), default=F("status")),
        failure_reason=Case(When(at_limit, then=Value("too_many_attempts")), default=F("failure_reason")),
        answered_at=Case(When(at_limit, then=Value(timezone.now())), default=F("answered_at")),
    )
    if not counted:
        return None
    challenge.refresh_from_db()
    return "too_many_attempts" if challenge.status == Status.FAILED else reason


def _consume(challenge: Challenge, at: datetime) -> bool:
    """The one conditional UPDATE that verifies: exactly one answer can ever move a challenge out of pending. Kept
    prepared (issue #18).

    On success ``challenge`` carries the three fields it wrote (no re-read: the others are as read, and nothing
    after the verdict reads the attempt count)."""
    now = timezone.now()
    pickup_until = now + timedelta(seconds=settings.MNS_HANDSHAKE_TTL_SECONDS)
    db = connections[DEFAULT_DB_ALIAS]
    bind = Challenge._meta.get_field("answered_at").get_db_prep_value
    with db.cursor() as cursor:
        db.execute_prepared(cursor, _CONSUME, [bind(now, db), bind(pickup_until, db), challenge.id, bind(at, db)])
        consumed = cursor.rowcount == 1
    if consumed:
        challenge.status, challenge.answered_at, challenge.pickup_until = Status.VERIFIED, now, pickup_until
    return consumed


_CONSUME = (
    f"UPDATE {Challenge._meta.db_table} SET status = '{Status.VERIFIED}', answered_at = %s, pickup_until = %s "  # noqa: S608
    f"WHERE id = %s AND status = '{Status.PENDING}' AND expires_at > %s AND attempts < max_attempts"
)


def _unanswerable(challenge: Challenge) -> str:
    """Why a challenge can no longer be answered, as it stands now."""
    challenge.refresh_from_db()
    if challenge.status == Status.VERIFIED:
        return "challenge_used"
    if challenge.status == Status.FAILED:
        return challenge.failure_reason or "challenge_failed"
    return "challenge_expired"


def _name_changed(challenge: Challenge, at: datetime) -> str | None:
    """Fail a challenge whose name moved on since it was issued (released, freed, re-registered, suspended)."""
    # FOR NO KEY UPDATE on PostgreSQL: waits for a statement being applied to the name, but not for the
    # foreign-key checks of a concurrent session pickup (FOR UPDATE would deadlock with those).
    record = registry_selectors.name_lock_by_id(challenge.record_id)
    wanted = NameStatus.PENDING if challenge.purpose == "register" else NameStatus.ACTIVE
    if record is not None and record.status == wanted and canonical_public_key(record.owner_key) == challenge.owner_key:
        return None
    failed = Challenge.objects.filter(id=challenge.id, status=Status.PENDING, expires_at__gt=at).update(
        status=Status.FAILED, failure_reason="name_changed", answered_at=timezone.now()
    )
    return "name_changed" if failed else _unanswerable(challenge)


# What a verified answer completes, by purpose, registered by the app that owns the flow (the registration
# flow registers ``register`` in its ``AppConfig.ready``). Called inside the answer's transaction: if it raises,
# the verification is rolled back with it and the inbound event is marked failed (staff can retry it), so a
# verified ``register`` whose session can be picked up always means confirmed. ``False``: not complete yet (the
# network's claim of the name is open), no session until it is.
Completion = Callable[[Challenge], bool]
_completions: dict[str, Completion] = {}
NEEDS_COMPLETION = frozenset({"register"})  # verifying one of these without its flow would confirm nothing


def register_completion(purpose: str, complete: Completion) -> None:
    _completions[purpose] = complete


def _complete(challenge: Challenge) -> bool:
    complete = _completions.get(challenge.purpose)
    if complete is None:
        if challenge.purpose in NEEDS_COMPLETION:
            raise RuntimeError(f"no completion is registered for {challenge.purpose} handshakes")
        return True
    return complete(challenge)


def pickup_open(*, challenge_id: str) -> int:
    """Open the session pickup of a verified ``register`` challenge whose registration completed after the answer
    (the network's claim was still open then); a challenge already picked up, or never verified, is left alone."""
    return Challenge.objects.filter(
        id=challenge_id, status=Status.VERIFIED, pickup_until=None, session_issued_at=None
    ).update(pickup_until=timezone.now() + timedelta(seconds=settings.MNS_HANDSHAKE_TTL_SECONDS))


def register_challenges_fail(*, name: str, owner_key: str, code: str) -> list[str]:
    """Fail the owner's open ``register`` challenges for ``name`` with ``code`` (the network refused the name);
    returns their ids. One whose session was picked up is left alone. Call it with the name's row locked."""
    ids = list(
        Challenge.objects.filter(record__name=name, purpose="register", owner_key=owner_key, session_issued_at=None)
        .exclude(status=Status.FAILED)
        .values_list("id", flat=True)
    )
    Challenge.objects.filter(id__in=ids, session_issued_at=None).exclude(status=Status.FAILED).update(
        status=Status.FAILED, failure_reason=code, answered_at=timezone.now()
    )
    return ids


def _result_send(challenge: Challenge, message: InboundMessage, answer: AnswerMessage, verdict: str) -> None:
    verified = verdict == "verified"
    result = Result(
        challenge=challenge.id, status="verified" if verified else "failed", reason=None if verified else verdict
    )
    outbound_enqueue(
        destination=answer.reply_to or message.sender,
        application=APPLICATION,
        payload=result.to_bytes(),
        idempotency_key=f"handshake-result:{challenge.id}:{message.msgid}",
        max_attempts=RESULT_MAX_ATTEMPTS,
        batchable=True,
    )


# ----------------------------------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class OpenedSession:
    session: Session
    token: str  # shown once, to the verifier's holder; only its hash is stored


def session_open(*, challenge_id: str, verifier: str) -> OpenedSession:
    """Give the holder of the challenge's verifier its session token, once, after a verified answer.

    The verifier is checked first (in constant time), so someone who only knows the id learns nothing more than
    polling tells. Then a conditional UPDATE claims the pickup: a verified challenge, within its pickup window,
    not picked up before. Refusals (nothing written): ``handshake_not_found`` 404, ``verifier_wrong`` 403,
    ``handshake_pending``/``handshake_failed``/``session_already_issued`` 409, ``handshake_expired`` 410.
    A ``register`` answered while the network's claim of the name is open has no pickup window yet
    (``pickup_until`` empty): ``handshake_pending`` until the registration completes.
    """
    challenge = selectors.challenge_known(challenge_id=challenge_id)
    if not secret_matches(verifier, challenge.verifier_hash):
        raise DomainError("verifier_wrong", "The verifier does not match this handshake.", status=403)
    token, now = new_token(), timezone.now()
    session = Session(
        token_hash=secret_hash(token),
        record=challenge.record,  # read with the challenge: the answer names it without another query
        owner_key=challenge.owner_key,
        purpose=challenge.purpose,
        created_from=challenge,
        expires_at=now + timedelta(seconds=settings.MNS_SESSION_TTL_SECONDS),
    )
    if not _pickup(session, now):
        raise _pickup_refusal(challenge, now)
    logger.info("opened a %s session for %s", session.purpose, challenge.record.name)
    return OpenedSession(session=session, token=token)


def _pickup(session: Session, now: datetime) -> bool:
    """Claim the pickup of ``session.created_from`` (verified, within its pickup window, not picked up before) and
    INSERT ``session`` with it, or nothing; whether it was. On PostgreSQL one statement kept prepared (the claim's
    ``UPDATE`` in a CTE, the ``INSERT`` from the row it claimed), where the ORM compiled two statements in a
    transaction (issue #18); on SQLite the two statements, in a transaction."""
    db = connections[DEFAULT_DB_ALIAS]
    at = Challenge._meta.get_field("session_issued_at").get_db_prep_value(now, db)
    claim, row = [at, session.created_from_id, at], insert_params([session], db)
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            db.execute_prepared(cursor, _PICKUP, [*claim, *row])
            found = cursor.fetchone()
        session_id = found[0] if found else None
    else:
        with transaction.atomic(), db.cursor() as cursor:
            db.execute_prepared(cursor, _CLAIM_PICKUP, claim)
            if cursor.rowcount != 1:
                return False
            db.execute_prepared(cursor, _INSERT_SESSION_ROW, row)
            session_id = cursor.lastrowid
    if session_id is None:
        return False
    session.pk, session._state.adding, session._state.db = session_id, False, db.alias
    return True


_CLAIM_PICKUP = (
    f"UPDATE {Challenge._meta.db_table} SET session_issued_at = %s "  # noqa: S608
    f"WHERE id = %s AND status = '{Status.VERIFIED}' AND session_issued_at IS NULL AND pickup_until > %s"
)
_INSERT_SESSION = (
    f"INSERT INTO {Session._meta.db_table} ({', '.join(field.column for field in insert_fields(Session))})"
)
_SESSION_VALUES = ", ".join("%s" for _ in insert_fields(Session))
_INSERT_SESSION_ROW = f"{_INSERT_SESSION} VALUES ({_SESSION_VALUES})"
_PICKUP = (
    f"WITH claimed AS ({_CLAIM_PICKUP} RETURNING id) "  # noqa: S608
    f"{_INSERT_SESSION} SELECT {_SESSION_VALUES} FROM claimed RETURNING id"
)


def _pickup_refusal(challenge: Challenge, now: datetime) -> DomainError:
    challenge.refresh_from_db()
    state = challenge.state(now)
    if state == "pending":
        return DomainError("handshake_pending", "The owner's node has not answered yet.", status=409)
    if state == "failed":
        return DomainError("handshake_failed", f"The handshake failed: {challenge.failure_reason}.", status=409)
    if state == "verified" and challenge.session_issued_at is not None:
        return DomainError("session_already_issued", "The session of this handshake was picked up.", status=409)
    return DomainError("handshake_expired", "The handshake expired before its session was picked up.", status=410)


def session_for_token(*, token: str, related: tuple[str, ...] = ()) -> Session:
    """The live session of a token, or a 401 refusal (``session_invalid``/``_revoked``/``_expired``).

    Also dead: a session whose name changed hands or was released since (``session_invalid``); a suspended name
    refuses with 403 ``name_suspended``. A ``register`` session works while its name is still pending.
    ``related``: more relations of the session's record to load in the same query (``select_related`` paths,
    such as the record's mailbox for an app above this one), so that a request reads its session and what it is
    about in one round trip.
    """
    digest = session_token_digest(token)
    session = Session.objects.select_related("record", *related).filter(token_hash=digest).first()
    return session_live(session=session, digest=digest)


def session_token_digest(token: object) -> str:
    """What a session's token is stored as (its hash: the token itself is never kept), or 401 ``session_invalid``
    for anything that cannot be a token."""
    if not isinstance(token, str) or not token.isascii() or not 0 < len(token) <= MAX_TOKEN_CHARS:
        raise _session_invalid()
    return secret_hash(token)


def session_live(*, session: Session | None, digest: str) -> Session:
    """``session`` (read by its token's ``digest``, with its record) if it is live; the refusals of
    ``session_for_token`` otherwise. For a read that loads the session in a statement of its own making (the
    mailboxes' early answers): every session check is made here, whoever read the row."""
    if session is None or not hmac.compare_digest(session.token_hash, digest):
        raise _session_invalid()
    if session.revoked_at is not None:
        raise DomainError("session_revoked", "This session was revoked.", status=401)
    if session.expires_at <= timezone.now():
        raise DomainError("session_expired", "This session expired; start a new handshake.", status=401)
    record = session.record
    if record.status == NameStatus.SUSPENDED:
        raise DomainError(
            "name_suspended", f"The name {record.name!r} is suspended by this gateway's staff.", status=403
        )
    usable = {NameStatus.ACTIVE} | ({NameStatus.PENDING} if session.purpose == "register" else set())
    if record.status not in usable or canonical_public_key(record.owner_key) != session.owner_key:
        raise DomainError("session_invalid", "The name of this session changed hands or was released.", status=401)
    return session


def session_check_scope(*, session: Session, name: str, purposes: set[str]) -> None:
    """Refuse (403 ``session_out_of_scope``) a session for another name, or opened for none of ``purposes``."""
    granted = {session.purpose} | IMPLIED_PURPOSES.get(session.purpose, frozenset())
    if session.record.name != name or not granted & purposes:
        needed = " or ".join(sorted(purposes))
        raise DomainError(
            "session_out_of_scope",
            f"This session is for {session.purpose} on {session.record.name!r}; this needs {needed} on {name!r}.",
            status=403,
        )


def session_authorise(*, token: str, name: str, purposes: set[str]) -> Session:
    """The session of ``token`` if it is live and allows one of ``purposes`` on the normalised ``name``.

    The one check behind every session-protected endpoint (the registry's statements view calls it as is).
    """
    session = session_for_token(token=token)
    session_check_scope(session=session, name=name, purposes=purposes)
    return session


def session_revoke(*, session: Session, by: str) -> bool:
    """Revoke one session (the owner's client logging out, or staff); revoking it again changes nothing."""
    return bool(Session.objects.filter(id=session.id, revoked_at=None).update(revoked_at=timezone.now(), revoked_by=by))


def sessions_revoke_for_record(*, record: NameRecord, by: str) -> int:
    """Revoke every unrevoked session of a name's mailbox; returns how many."""
    return Session.objects.filter(record=record, revoked_at=None).update(revoked_at=timezone.now(), revoked_by=by)


# ------------------------------------------------------------------------------------------------------ cleanup


def handshakes_clean(*, now: datetime | None = None) -> tuple[int, int]:
    """Delete challenges and sessions that expired more than ``MNS_HANDSHAKE_KEEP_SECONDS`` ago.

    A challenge is kept until its pickup window is over too. Plain conditional DELETEs: safe to run twice or in
    parallel. Returns (challenges, sessions) deleted.
    """
    now = now or timezone.now()
    keep = timedelta(seconds=settings.MNS_HANDSHAKE_KEEP_SECONDS)
    pickup = timedelta(seconds=settings.MNS_HANDSHAKE_TTL_SECONDS)
    _, sessions = Session.objects.filter(expires_at__lt=now - keep).delete()
    _, challenges = Challenge.objects.filter(expires_at__lt=now - keep - pickup).delete()
    counts = challenges.get(Challenge._meta.label, 0), sessions.get(Session._meta.label, 0)
    if any(counts):
        logger.info("cleaned %s expired challenges and %s expired sessions", *counts)
    return counts


# ------------------------------------------------------------------------------------------------------ helpers


def _ip_or_none(address: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def _session_invalid() -> DomainError:
    return DomainError("session_invalid", "Unknown session token.", status=401)
