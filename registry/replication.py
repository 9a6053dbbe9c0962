"""The registry's kinds of replicated operation, registered with federation in ``apps.py``: owner-signed
statements (``statement``: transfers and their acceptance included, each signed by its own signer) and the home
gateway's moderation (``suspend``, ``restore``), and what a claim of a new name asks of the local name space."""

from typing import Any

from federation import services as federation
from federation.services import Invalid, Skip, Wait, kinds
from mns_client.protocol.errors import MNSError
from mns_client.protocol.statements import NameStatement, SignedStatement, StatementInvalid
from registry import selectors, services
from registry.models import NameRecord

# Refusals no honest origin sends: forged, another owner's name, an accept of another offer or past its deadline
# (the origin checked the deadline by its own clock when it took the accept).
_INVALID_STATEMENT = {
    "signature_invalid",
    "statement_invalid",
    "statement_wrong_owner",
    "statement_wrong_name",
    "transfer_wrong_offer",
    "transfer_expired",
}


def statement_apply(origin: str, payload: dict[str, Any]) -> str:
    """A peer's ``statement`` op: verified (the owner's signature, a gateway this one knows) and applied. For a
    relayed one ``origin`` is the gateway whose log it first appeared in, as the relaying peer names it."""
    try:
        signed = SignedStatement.from_dict(payload)
    except StatementInvalid as invalid:
        raise Invalid(invalid.code) from None
    statement = signed.statement
    if statement.gateway not in federation.gateways_known() | {origin, federation.me()}:
        # A relay checked the gateway against its own peers, which this gateway may not have: not its fault.
        raise (Skip if federation.relayed_by() else Invalid)("statement_gateway_unknown")
    try:
        signed.verify()
    except StatementInvalid as invalid:
        raise Invalid(invalid.code) from None
    if statement.op == "register":
        _local_hold_lose(statement.name, statement.owner)
    try:
        _record, outcome = services.statement_replicate(signed=signed)
    except StatementInvalid as refused:
        if refused.code in _INVALID_STATEMENT:
            raise Invalid(refused.code) from None
        if refused.code == "statement_not_registered" or _offer_not_seen_yet(refused.code, statement):
            raise Wait() from None
        raise Skip(refused.code) from None
    except MNSError as refused:  # the name-space rules: taken here, look-alike, names per owner
        raise Skip(getattr(refused, "code", "refused")) from None
    return outcome


def _offer_not_seen_yet(code: str, statement: NameStatement) -> bool:
    """An accept taken at one gateway may reach this one before the offer, taken at another: wait for the offer
    while this gateway's record is behind it; once past it, the offer was withdrawn here and the accept is moot."""
    if code != "transfer_not_pending" or statement.accepts is None:
        return False
    record = selectors.record_find(name=statement.name)
    return record is None or record.seq is None or record.seq < statement.accepts


def _local_hold_lose(name: str, owner: str) -> None:
    """A confirmed register from the network beats a local hold of another owner still waiting for its claim."""
    record = selectors.name_pending_of_other(name=name, owner_key=owner)
    if record is not None:
        federation.hold_lose(name=name, owner_key=record.owner_key)


def moderation_apply(suspend: bool) -> kinds.Apply:
    def apply(origin: str, payload: dict[str, Any]) -> str:
        record = NameRecord.objects.filter(name=kinds.text(payload, "name", 32)).first()
        if record is None:
            raise Skip("unknown_name")
        if not record.gateways or record.gateways[0] != origin:
            raise Skip("not_home")
        changed = services.name_status_replicate(name=record.name, suspended=suspend)
        return "applied" if changed else "unchanged"

    return apply


def register() -> None:
    kinds.register("statement", apply=statement_apply, relay=True)
    kinds.register("suspend", apply=moderation_apply(True))
    kinds.register("restore", apply=moderation_apply(False))
    federation.register_name_space(
        federation.NameSpace(lock=selectors.name_lock, taken=selectors.skeleton_taken, owner_full=selectors.owner_full)
    )
