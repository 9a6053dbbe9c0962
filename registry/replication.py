"""The registry's kinds of replicated operation, registered with federation in ``apps.py``: owner-signed
statements (``statement``: transfers and their acceptance included, each signed by its own signer) and the home
gateway's moderation (``suspend``, ``restore``), and what a claim of a new name asks of the local name space."""

import hashlib
from collections.abc import Iterator
from typing import Any

from django.db import IntegrityError, transaction

from federation import services as federation
from federation.services import Invalid, Skip, Wait, kinds, sets
from mns_client.protocol.codecs import canonical_json
from mns_client.protocol.errors import MNSError
from mns_client.protocol.reconcile import item_hash
from mns_client.protocol.statements import NameStatement, SignedStatement, StatementInvalid
from registry import selectors, services
from registry.models import NameRecord, StatementRecord

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


# --- The ``names`` set: every name's current owner-signed statement, for reconciliation and snapshots -----------
_SHARED = (NameRecord.Status.ACTIVE, NameRecord.Status.SUSPENDED, NameRecord.Status.RELEASED)
MAX_CHAIN = 50


def statement_hash(statement: dict[str, Any]) -> bytes:
    """SHA-256 of the statement's canonical bytes (what its owner signed): the record's stored fields are the
    statement's ``to_dict()``, so this equals hashing ``NameStatement.canonical()`` without parsing each row."""
    return hashlib.sha256(canonical_json(statement)).digest()


def names_items(argument: str, home: str) -> Iterator[tuple[str, bytes]]:
    """Every confirmed name (active, suspended or released) with the hash of its current statement and whether it
    is suspended: two gateways that agree on both hold the same name."""
    rows = NameRecord.objects.filter(status__in=_SHARED, statement__isnull=False).values_list(
        "name", "statement", "status"
    )
    for name, statement, status in rows.iterator(chunk_size=5000):
        suspended = "suspended" if status == NameRecord.Status.SUSPENDED else ""
        yield name, item_hash(statement_hash(statement), suspended)


def names_serve(argument: str, keys: list[str]) -> list[dict[str, Any]]:
    """Each name as ``{"name", "statements": [signed, …], "suspended"}``: its statements since its last register
    (each owner-signed, applied in order; at most ``MAX_CHAIN``, the newest), so a gateway that never saw the name
    can follow the chain from its register."""
    records = dict(
        NameRecord.objects.filter(name__in=keys, status__in=_SHARED, statement__isnull=False).values_list(
            "name", "status"
        )
    )
    chains: dict[str, list[dict[str, Any]]] = {name: [] for name in records}
    rows = StatementRecord.objects.filter(record__name__in=list(records)).order_by("record_id", "seq")
    for name, op, statement, signature in rows.values_list("record__name", "op", "statement", "signature"):
        if op == StatementRecord.Op.REGISTER:
            chains[name] = []
        chains[name].append({"statement": statement, "signature": signature})
    return [
        {"name": name, "statements": chains[name][-MAX_CHAIN:], "suspended": status == NameRecord.Status.SUSPENDED}
        for name, status in records.items()
    ]


def names_apply(origin: str, item: dict[str, Any]) -> str:
    """A name from a peer's snapshot: each statement of its chain verified and applied as a ``statement`` op is
    (older ones the name already has change nothing), then its suspension as the home's ``suspend`` or
    ``restore`` op would (only when the peer is the name's home)."""
    statements, suspended = item.get("statements"), item.get("suspended")
    if not isinstance(statements, list) or not 0 < len(statements) <= MAX_CHAIN or not isinstance(suspended, bool):
        raise Invalid("item_invalid")
    outcome, skipped = "unchanged", None
    for signed in statements:
        if not isinstance(signed, dict) or (signed.get("statement") or {}).get("name") != item.get("name"):
            raise Invalid("item_invalid")
        try:
            if statement_apply(origin, signed) == "applied":
                outcome = "applied"
        except Skip as skip:
            skipped = skip  # superseded here, or refused by this gateway's name space: the next one may still apply
    record = NameRecord.objects.filter(name=item["name"]).only("status").first()
    if record is not None and (record.status == NameRecord.Status.SUSPENDED) != suspended:
        try:
            if moderation_apply(suspended)(origin, {"name": item["name"]}) == "applied":
                outcome = "applied"
        except Skip:
            pass
    if outcome == "unchanged" and skipped is not None and str(skipped) != "statement_stale_seq":
        raise skipped
    return outcome


def names_apply_many(origin: str, items: list[Any]) -> list[str]:
    """A chunk of a snapshot's names: the ones this gateway has never seen, each a lone ``register``, verified and
    stored together (``services.statements_replicate_new``); every other one through ``names_apply``, in a
    savepoint each. Outcomes in the items' order, as ``names_apply`` would give them (``invalid:<why>`` for an
    item that does not verify)."""
    outcomes: dict[int, str] = {}
    new: dict[int, SignedStatement] = {}
    known = federation.gateways_known() | {origin, federation.me()}
    names = [item.get("name") for item in items if isinstance(item, dict)]
    existing = set(NameRecord.objects.filter(name__in=[n for n in names if isinstance(n, str)]).values_list("name"))
    for index, item in enumerate(items):
        statements = item.get("statements") if isinstance(item, dict) else None
        if not (isinstance(statements, list) and len(statements) == 1 and item.get("suspended") is False):
            continue
        try:
            signed = SignedStatement.from_dict(statements[0])
        except StatementInvalid:
            continue  # names_apply says why
        statement = signed.statement
        if statement.name == item.get("name") and statement.gateway in known and (statement.name,) not in existing:
            new[index] = signed
    if new:
        try:
            with transaction.atomic():
                by_name = services.statements_replicate_new(signed=list(new.values()))
        except IntegrityError:
            by_name = {}  # a concurrent writer took one of them: every item goes one by one
        for index, signed in new.items():
            outcome = by_name.get(signed.statement.name, "exists")
            if outcome != "exists":
                outcomes[index] = _as_apply_outcome(outcome)
    for index, item in enumerate(items):
        if index not in outcomes:
            outcomes[index] = sets.outcome(names_apply, origin, item)
    return [outcomes[index] for index in range(len(items))]


def _as_apply_outcome(code: str) -> str:
    if code == "applied":
        return code
    return f"invalid:{code}"[:32] if code in _INVALID_STATEMENT else code[:32]


def register() -> None:
    kinds.register("statement", apply=statement_apply, relay=True)
    sets.register("names", items=names_items, serve=names_serve, apply=names_apply, apply_many=names_apply_many)
    kinds.register("suspend", apply=moderation_apply(True))
    kinds.register("restore", apply=moderation_apply(False))
    federation.register_name_space(
        federation.NameSpace(lock=selectors.name_lock, taken=selectors.skeleton_taken, owner_full=selectors.owner_full)
    )
