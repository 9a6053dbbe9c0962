"""Registration: a name held for the owner of a signed ``register`` statement, claimed across the network, proved
by the owner's node answering the ``register`` handshake, and completed with a mailbox and an access token.

The flow crosses four apps and writes through each one's services: the registry holds and activates the name,
federation claims it from the peers, the handshake proves the owner's key, the mailboxes open the mailbox and its
token. It arrives over REST (``views.py``) or over Maxima (``handlers.py``); it is completed by whichever comes
last of the owner's answer (``registration_confirm``, registered with the handshake) and the network's
confirmation of the claim (``registration_complete``, registered with federation), and refused by the network
(``registration_refuse``). See ``apps.py`` for the registrations.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from core.errors import DomainError
from federation import services as federation
from handshake import services as handshake_services
from handshake.models import Challenge
from mailboxes import selectors as mailbox_selectors
from mailboxes import services as mailbox_services
from mailboxes.models import Mailbox
from maxima.node import node_client
from maxima.routing import InboundMessage
from maxima.selectors import gateway_identity_key
from maxima.services import outbound_enqueue
from mns_client.protocol.codecs import canonical_public_key
from mns_client.protocol.errors import MNSError
from mns_client.protocol.handshake import new_verifier, secret_hash
from mns_client.protocol.mailbox import APPLICATION, Register, RegisterChallenge, RegisterRefused, reply_to_of
from mns_client.protocol.statements import SignedStatement
from onchain import services as onchain_services
from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.models import NameRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingRegistration:
    record: NameRecord
    issued: handshake_services.IssuedChallenge


def mailbox_register(
    *,
    signed: SignedStatement,
    address: str,
    verifier_hash: str,
    source: str,
    client_address: str | None = None,
    chain_signature: bytes | None = None,
) -> PendingRegistration:
    """Hold the name of a ``register`` statement as pending and issue the ``register`` handshake for it.

    The statement is checked by ``registry.services.name_hold`` (signature, gateway, availability, succession) and
    the challenge by ``handshake.services.challenge_issue``; a refusal of either leaves nothing behind, the hold
    included. A name held on chain by Minima's MNS needs ``chain_signature``, its on-chain key's ``sign`` over the
    statement (``onchain.services.registration_proof``, asked of the node before any row is locked). ``address``
    (where the mailbox forwards to and the access token goes) is kept with the challenge until the owner's node
    answers it (``registration_confirm``).
    """
    address = mailbox_services.address_check(address)
    proof = _chain_check(signed, chain_signature)
    with transaction.atomic():
        record = registry_services.name_hold(signed=signed, gateway_key=gateway_identity_key(), source=source)
        if proof is not None:
            onchain_services.proof_record(proof)
        # With peers, the network must confirm the name too.
        federation.claim_start(name=record.name, skeleton=record.skeleton, owner_key=record.owner_key)
        issued = handshake_services.challenge_issue(
            name=record.name, purpose="register", verifier_hash=verifier_hash, client_address=client_address
        )
        mailbox_services.registration_record(
            challenge_id=issued.challenge.id, record=record, address=address, source=source
        )
    logger.info("registration of %s started over %s", record.name, source)
    return PendingRegistration(record=record, issued=issued)


def _chain_check(signed: SignedStatement, chain_signature: bytes | None) -> onchain_services.Proof | None:
    """The on-chain check, before any row is locked (it may ask the node); None when there is no chain to read."""
    if not onchain_services.enabled():
        return None
    signed.verify()  # a forged statement costs no node call
    statement = signed.statement
    return onchain_services.registration_proof(
        name=statement.name,
        owner_key=statement.owner,
        statement=statement.canonical(),
        signature=chain_signature,
        client=node_client(),
    )


def register_received(*, message: InboundMessage, body: dict[str, Any]) -> str:
    """A ``register`` over Maxima: the REST registration, answered over Maxima. Returns the outcome's code.

    Only the statement's owner may send it (Maxima verified ``message.sender``). The ``register-challenge`` goes to
    ``reply_to`` (else ``address``); a refusal goes back as ``register-refused`` with the REST API's error code (to
    the sender's key when the message is too malformed to name an address). Never raises for a refusal: the reply
    must commit, and a refusal writes nothing else.
    """
    try:
        request = Register.from_dict(body)
    except MNSError as invalid:
        destination = reply_to_of(body) or message.sender
        _register_refuse(message, destination, None, getattr(invalid, "code", "malformed"), _detail(invalid))
        return "malformed"
    destination = request.reply_to or request.address
    name = request.signed.statement.name
    if canonical_public_key(message.sender) != request.signed.statement.owner:
        detail = "A register over Maxima must come from the statement's owner's node."
        _register_refuse(message, destination, name, "register_wrong_sender", detail)
        return "register_wrong_sender"
    verifier_hash = request.verifier_hash or secret_hash(new_verifier())  # no verifier: no REST session for anyone
    try:
        with transaction.atomic():
            pending = mailbox_register(
                signed=request.signed, address=request.address, verifier_hash=verifier_hash, source="maxima"
            )
    except MNSError as refused:
        _register_refuse(message, destination, name, refused.code, _detail(refused))
        return refused.code
    challenge = pending.issued.challenge
    reply = RegisterChallenge(
        name=name, challenge=challenge.id, code=pending.issued.code, expires_at=_ms(challenge.expires_at)
    )
    outbound_enqueue(
        destination=destination,
        application=APPLICATION,
        payload=reply.to_bytes(),
        idempotency_key=f"register-challenge:{challenge.id}",
    )
    return "challenged"


def _register_refuse(message: InboundMessage, destination: str, name: str | None, code: str, detail: str) -> None:
    outbound_enqueue(
        destination=destination,
        application=APPLICATION,
        payload=RegisterRefused(name=name, reason=code, detail=detail).to_bytes(),
        idempotency_key=f"register-refused:{message.msgid}",
    )
    logger.info("refused a register over Maxima: %s", code)


def registration_confirm(*, challenge: Challenge) -> Mailbox | None:
    """The handshake's hook: the owner's node answered the ``register`` challenge, so the name is theirs.

    Registered with the handshake (``apps.py``) and called inside the verified answer's transaction (a failure
    here rolls the verification back). With peers, the network's claim must be confirmed too: while it is open
    this returns ``None`` and the name stays pending, and the claim's confirmation finishes the registration
    (``registration_complete``), whichever comes last.
    """
    name = challenge.record.name
    if not federation.claim_allows_confirm(name=name, owner_key=challenge.owner_key, challenge_id=challenge.id):
        return None
    return registration_complete(challenge=challenge)


def registration_complete(*, challenge: Challenge) -> Mailbox:
    """Confirm the name, create the mailbox (a mailbox left from the name's previous owner is deleted with its
    messages), issue the access token, sent to the owner's address, and log the name and the mailbox for the
    peers (the signed register statement, then the mailbox and the gateways that keep it)."""
    record = registry_services.name_activate(name=challenge.record.name)
    registration = mailbox_selectors.registration_of(challenge=challenge)
    address = registration.address if registration is not None else ""
    mailbox = mailbox_services.mailbox_open(record=record, owner_key=challenge.owner_key, address=address)
    # The client may pick its session up now (a register answered while the network's claim was open had none).
    handshake_services.pickup_open(challenge_id=challenge.id)
    federation.op_append(kind="statement", payload={"statement": record.statement, "signature": record.signature})
    replicas = federation.replicas_for_new_mailbox()
    registry_services.name_replicas_set(name=record.name, gateways=replicas)
    federation.op_append(
        kind="mailbox",
        payload={"name": record.name, "owner": mailbox.owner_key, "address": mailbox.address, "replicas": replicas},
    )
    logger.info("confirmed %s and opened its mailbox", record.name)
    return mailbox


def registration_refuse(*, name: str, owner_key: str, code: str) -> None:
    """The network refused the claim of a held name (``name_taken``) or it expired (``claim_expired``).

    The register challenge fails with ``code`` (what the client polling it over REST sees), a registration made
    over Maxima gets a ``register-refused`` at the owner's address, and the hold is given up.

    Locks, in the order the answer to a handshake takes them: the name's row FOR NO KEY UPDATE (as
    ``handshake.services`` does), then the challenges, and only then the name's row FOR UPDATE (giving the hold
    up). A session pickup locks its challenge, then takes a key-share lock on the name's row (the session's
    foreign key), which FOR NO KEY UPDATE lets through: locking the name FOR UPDATE first deadlocked with it.
    """
    registry_selectors.name_lock(name)
    challenges = handshake_services.register_challenges_fail(name=name, owner_key=owner_key, code=code)
    for registration in mailbox_selectors.registrations_over_maxima(challenge_ids=challenges):
        outbound_enqueue(
            destination=registration.address,
            application=APPLICATION,
            payload=RegisterRefused(name=name, reason=code, detail=f"The MNS network refused {name!r}.").to_bytes(),
            idempotency_key=f"register-refused:{registration.challenge_id}",
        )
    registry_services.name_hold_refuse(name=name, owner_key=owner_key)


def _detail(error: Exception) -> str:
    return error.detail if isinstance(error, DomainError) else str(error)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def claim_confirmed(challenge_id: str) -> None:
    """Federation's outcome hook: the network confirmed the claim after the owner answered ``challenge_id``."""
    challenge = Challenge.objects.filter(id=challenge_id).first()
    if challenge is not None:
        registration_complete(challenge=challenge)


def claim_refused(name: str, owner_key: str, code: str) -> None:
    """Federation's outcome hook: the network refused the claim (``name_taken``) or it expired."""
    registration_refuse(name=name, owner_key=owner_key, code=code)


def handshake_verified(challenge: Challenge) -> bool:
    """The handshake's completion hook for ``register``: ``False`` while the network's claim is open."""
    return registration_confirm(challenge=challenge) is not None
