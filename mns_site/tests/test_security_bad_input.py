"""Bad input at every door: a clear error code with the right status, and nothing written anywhere.

The doors are every write operation of the REST API (checked against the OpenAPI schema, so a new one must be added
here), the webhook, and the Maxima ``mns`` message types. "Nothing written" counts the rows of every model before
and after; a Maxima message that is not our protocol is kept as its ``ignored`` inbound event (with the reason, and
a log line) and nothing else.
"""

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from django.core.cache import cache
from django.test import Client

from handshake import services as handshake_services
from mailboxes.tests.support import GATEWAY_ADDRESS, VERIFIER, Opened, Owner, deliver_body, open_mailbox, session
from maxima.models import InboundEvent, NodeState, OutboundMessage
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.handshake import Answer, verifier_hash
from mns_site.tests.security_support import hook_event, hook_post, row_counts
from registry.tests.support import GATEWAY

pytestmark = pytest.mark.django_db
KEY = "0x30819F300D06092A864886F70D010101050003818D00308189028181"  # an RSA key's DER, cut short


def doors(*, challenge: str, token: dict[str, str], manage: dict[str, str]) -> dict[str, tuple[str, str, dict]]:
    return {
        "register": ("post", "/api/v1/mailboxes", {}),
        "handshake": ("post", "/api/v1/handshakes", {}),
        "pickup": ("post", f"/api/v1/handshakes/{challenge}/session", {}),
        "settings": ("patch", "/api/v1/mailboxes/alice", manage),
        "ack": ("post", "/api/v1/mailboxes/alice/messages/ack", token),
        "forward": ("post", "/api/v1/mailboxes/alice/forward", token),
        "submit": ("post", "/api/v1/names/alice/messages", {}),
        "statement": ("post", "/api/v1/names/alice/statements", manage),
        "logout": ("delete", "/api/v1/session", manage),
        "delete message": ("delete", "/api/v1/mailboxes/alice/messages/nosuchid", token),
        "revoke token": ("delete", "/api/v1/mailboxes/alice/access-token", manage),
        "rotate token": ("post", "/api/v1/mailboxes/alice/access-token/rotate", manage),
        "relay": ("post", "/api/v1/relay", {}),
        "federation roots": ("post", "/api/v1/federation/roots", {}),
        "federation reconcile": ("post", "/api/v1/federation/reconcile", {}),
        "federation snapshot": ("post", "/api/v1/federation/snapshot", {}),
    }


@dataclass
class World:
    client: Client
    alice: Opened
    stranger: Owner
    manage: dict[str, str]
    challenge: str

    def door(self, name: str) -> tuple[str, str, dict[str, str]]:
        """(method, path, credentials) of a door, with what gets the request as far as reading its body."""
        return doors(challenge=self.challenge, token=self.alice.auth, manage=self.manage)[name]

    def send(self, door: str, body: bytes | str | dict | list | None, **headers: str) -> Any:
        method, path, credentials = self.door(door)
        raw = json.dumps(body) if isinstance(body, dict | list) else body
        return self.client.generic(
            method.upper(), path, raw or b"", content_type="application/json", **credentials, **headers
        )


@pytest.fixture
def world(db: None, settings: Any) -> World:
    settings.MNS_REST_SUBMISSION = True
    settings.MAXIMA_MAX_AGE_SECONDS = 900
    NodeState.objects.create(
        pk=1, reachable=True, publickey=GATEWAY, localidentity=GATEWAY_ADDRESS, p2pidentity=GATEWAY_ADDRESS
    )
    alice = open_mailbox(Owner.fresh(), "alice")
    manage = session(alice.owner, "alice", "manage")
    pending = handshake_services.challenge_issue(name="alice", purpose="read", verifier_hash=verifier_hash(VERIFIER))
    cache.clear()
    return World(Client(raise_request_exception=False), alice, Owner.fresh(), manage, pending.challenge.id)


def refused(response: Any) -> tuple[int, str]:
    assert response["Content-Type"] == "application/json", response.content[:200]
    return response.status_code, json.loads(response.content)["error"]


# --------------------------------------------------------------------------------------------------- REST doors

BODY_DOORS = ["register", "handshake", "pickup", "settings", "ack", "forward", "submit", "statement"]
# The peers' reconciliation doors: public for names, a peer's signed token for mailbox contents.
BODY_DOORS += ["federation roots", "federation reconcile", "federation snapshot"]
BODYLESS_DOORS = ["logout", "delete message", "revoke token", "rotate token"]
# The MiniDapps' relay reads any content type (a node labels its POSTs as forms) and refuses what it cannot relay as
# relay_invalid (mailboxes/tests/test_relay.py); here it shares the size limit of every door.
RELAY_DOOR = ["relay"]


def test_the_table_covers_every_write_operation_of_the_api(client: Client) -> None:
    schema = yaml.safe_load(client.get("/api/schema/").content)
    writes = {
        (method, path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"post", "put", "patch", "delete"}
    }
    templated = {
        (method, path.replace("/alice", "/{name}").replace("nosuchid", "{uid}"))
        for method, path, _ in doors(challenge="{challenge_id}", token={}, manage={}).values()
    }
    assert writes == templated
    assert set(BODY_DOORS + BODYLESS_DOORS + RELAY_DOOR) == set(doors(challenge="", token={}, manage={}))


MALFORMED = [
    pytest.param(b"{", (400, "malformed_request"), id="truncated JSON"),
    pytest.param(b"\xff\xfe{}", (400, "malformed_request"), id="not UTF-8"),
    pytest.param(b"[" * 5000 + b"]" * 5000, (400, "malformed_request"), id="nested too deep"),
    pytest.param(b'{"a": NaN}', (400, "malformed_request"), id="NaN"),
    pytest.param([], (400, "invalid"), id="a list"),
    pytest.param(b'"text"', (400, "invalid"), id="a string"),
    pytest.param(b"null", (400, "invalid"), id="null"),
]


@pytest.mark.parametrize("door", BODY_DOORS)
@pytest.mark.parametrize(("body", "expected"), MALFORMED)
def test_malformed_json_is_refused_400_at_every_door_and_nothing_is_written(
    world: World, door: str, body: Any, expected: tuple[int, str]
) -> None:
    if door == "statement" and expected[1] == "invalid" and body != b"null":
        expected = (400, "statement_invalid")  # parsed by mns_client, never coerced (the signed bytes)
    before = row_counts()
    assert refused(world.send(door, body)) == expected
    assert row_counts() == before


@pytest.mark.parametrize("door", BODY_DOORS + BODYLESS_DOORS + RELAY_DOOR)
def test_an_oversized_body_is_refused_413_at_every_door_and_nothing_is_written(world: World, door: str) -> None:
    before = row_counts()
    body = b'{"x": "' + b"a" * (256 * 1024) + b'"}'
    assert refused(world.send(door, body)) == (413, "request_too_large")
    assert row_counts() == before


@pytest.mark.parametrize("door", BODY_DOORS)
def test_a_body_that_is_not_json_is_refused_415_at_every_door(world: World, door: str) -> None:
    method, path, credentials = world.door(door)
    before = row_counts()
    response = world.client.generic(method.upper(), path, b"name=alice", content_type="text/plain", **credentials)
    assert refused(response) == (415, "unsupported_media_type")
    assert row_counts() == before


def _register(world: World, **changes: Any) -> dict[str, Any]:
    owner = world.stranger
    statement = owner.register("bob").to_dict()
    statement["statement"].update(changes.pop("statement", {}))
    return {**statement, "address": owner.address, "verifier_hash": verifier_hash(VERIFIER), **changes}


def _bob_signed(world: World, name: str, **fields: Any) -> dict[str, Any]:
    return {
        **world.stranger.register(name, **fields).to_dict(),
        "address": world.stranger.address,
        "verifier_hash": verifier_hash(VERIFIER),
    }


FIELD_CASES = [
    # register: names, keys, hex, signatures
    ("register", lambda w: _register(w, statement={"name": "b\u00f6b"}), (400, "statement_invalid")),
    ("register", lambda w: _register(w, statement={"name": "bo\x00b"}), (400, "statement_invalid")),
    ("register", lambda w: _register(w, statement={"name": "bob\u202e"}), (400, "statement_invalid")),
    ("register", lambda w: _register(w, statement={"name": "b" * 200}), (400, "statement_invalid")),
    ("register", lambda w: _register(w, statement={"name": "bobby"}), (400, "signature_invalid")),
    ("register", lambda w: _register(w, statement={"box_key": "0x1234"}), (400, "statement_invalid")),
    ("register", lambda w: _register(w, statement={"owner": KEY}), (400, "statement_invalid")),
    ("register", lambda w: _register(w, signature="0xZZ"), (400, "statement_invalid")),
    ("register", lambda w: _register(w, signature="0x" + "00" * 127), (400, "statement_invalid")),
    ("register", lambda w: _register(w, signature="0x" + "00" * 128), (400, "signature_invalid")),
    ("register", lambda w: _register(w, verifier_hash="A" * 64), (400, "invalid")),
    ("register", lambda w: _register(w, address="Mx\u00e9@host:9001"), (400, "invalid")),
    # handshake
    ("handshake", {"name": "al\u0000ice", "purpose": "read", "verifier_hash": "0" * 64}, (400, "invalid")),
    ("handshake", {"name": "al\u0007ice", "purpose": "read", "verifier_hash": "0" * 64}, (400, "name_invalid")),
    ("handshake", {"name": "\u0430lice", "purpose": "read", "verifier_hash": "0" * 64}, (400, "name_invalid")),
    ("handshake", {"name": "alice", "purpose": "root", "verifier_hash": "0" * 64}, (400, "invalid")),
    ("handshake", {"name": "alice", "purpose": "read", "verifier_hash": "zz" * 32}, (400, "invalid")),
    ("handshake", {"name": ["alice"], "purpose": "read", "verifier_hash": "0" * 64}, (400, "invalid")),
    # session pickup
    ("pickup", {"verifier": "v\u00e9rifier" * 6}, (403, "verifier_wrong")),
    ("pickup", {"verifier": "a" * 129}, (400, "invalid")),
    ("pickup", {"verifier": None}, (400, "invalid")),
    # mailbox settings
    ("settings", {"blocked": [KEY]}, (400, "invalid")),
    ("settings", {"blocked": ["0xZZ"]}, (400, "invalid")),
    ("settings", {"retention_days": "forever"}, (400, "invalid")),
    ("settings", {"retention_days": -1}, (400, "invalid")),
    # ack
    ("ack", {"ids": "all"}, (400, "invalid")),
    ("ack", {"ids": []}, (400, "invalid")),
    ("ack", {"ids": ["x" * 33]}, (400, "invalid")),
    # forward
    ("forward", {"delete_after": "sometimes"}, (400, "invalid")),
    # REST submission: hex, ids, schemes, keys
    ("submit", lambda w: {**_submit(), "ciphertext": "0xZZ"}, (400, "invalid")),
    ("submit", lambda w: {**_submit(), "ciphertext": "AQID"}, (400, "invalid")),
    ("submit", lambda w: {**_submit(), "ciphertext": "0x"}, (400, "invalid")),
    ("submit", lambda w: {**_submit(), "id": "../../etc"}, (400, "invalid")),
    ("submit", lambda w: {**_submit(), "scheme": "rot13"}, (400, "bad_scheme")),
    ("submit", lambda w: {**_submit(), "sender": KEY}, (400, "invalid")),
    ("submit", lambda w: {**_submit(), "ciphertext": "0x" + "00" * (64 * 1024 + 1)}, (413, "too_large")),
    # statements: bad signatures
    ("statement", lambda w: _update(w, signature="0x" + "00" * 128), (400, "signature_invalid")),
    ("statement", lambda w: _update(w, signer=w.stranger), (400, "signature_invalid")),
    ("statement", lambda w: _update(w, signature="0x" + "0" * 255), (400, "statement_invalid")),
    ("statement", lambda w: {"statement": "x", "signature": "0x00"}, (400, "statement_invalid")),
]


def _submit() -> dict[str, Any]:
    body = deliver_body("alice")
    return {key: body[key] for key in ("id", "scheme", "ciphertext")}


def _update(world: World, *, signature: str | None = None, signer: Owner | None = None) -> dict[str, Any]:
    owner = world.alice.owner
    signed = owner.sign("update", "alice", 2, box_key=to_hex(owner.box_public)).to_dict()
    if signer is not None:
        signed["signature"] = signer.sign("update", "alice", 2, box_key=to_hex(owner.box_public)).to_dict()["signature"]
    if signature is not None:
        signed["signature"] = signature
    return signed


@pytest.mark.parametrize(
    ("door", "body", "expected"),
    FIELD_CASES,
    ids=[f"{door}-{n}" for n, (door, _, _) in enumerate(FIELD_CASES)],
)
def test_bad_fields_are_refused_with_their_code_and_nothing_is_written(
    world: World, door: str, body: Any, expected: tuple[int, str]
) -> None:
    body = body(world) if callable(body) else body
    before = row_counts()
    assert refused(world.send(door, body)) == expected
    assert row_counts() == before


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/names/al%00ice", (400, "name_invalid")),
        ("/api/v1/names/%E2%80%AEalice", (400, "name_invalid")),
        ("/api/v1/names/" + "a" * 300, (400, "name_too_long")),
        ("/api/v1/names/%FF%FE", (400, "name_invalid")),
        ("/api/v1/handshakes/%00", (404, "handshake_not_found")),
        ("/api/v1/mailboxes/al%0Aice/messages", (400, "name_invalid")),
    ],
)
def test_control_and_non_ascii_characters_in_names_in_the_path_are_refused(
    world: World, path: str, expected: tuple[int, str]
) -> None:
    before = row_counts()
    assert refused(world.client.get(path)) == expected
    assert row_counts() == before


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("post", "/api/v1/handshakes/%00/session", (404, "handshake_not_found")),
        ("post", "/api/v1/handshakes/" + "a" * 300 + "/session", (404, "handshake_not_found")),
        ("get", "/api/v1/mailboxes/alice/messages/%00", (404, "message_not_found")),
        ("get", "/api/v1/mailboxes/alice/messages/%C3%A9t%C3%A9", (404, "message_not_found")),
        ("delete", "/api/v1/mailboxes/alice/messages/" + "x" * 300, (404, "message_not_found")),
    ],
)
def test_ids_in_the_path_that_cannot_be_ids_find_nothing(
    world: World, method: str, path: str, expected: tuple[int, str]
) -> None:
    """A NUL byte reaching PostgreSQL would be a 500: such ids are refused before any query."""
    before = row_counts()
    body = json.dumps({"verifier": VERIFIER}) if method == "post" else ""
    response = world.client.generic(method.upper(), path, body, content_type="application/json", **world.alice.auth)
    assert refused(response) == expected
    assert row_counts() == before


@pytest.mark.parametrize(
    "header",
    [
        "MNS-Session " + "a" * 5000,
        "MNS-Session \u00e9t\u00e9",
        "MNS-Token nocolon",
        "MNS-Token a:b:c",
        "MNS-Token " + "x" * 64 + ":" + "\x00" * 10,
        "Bearer x",
    ],
)
def test_malformed_credentials_are_refused_401_and_nothing_is_written(world: World, header: str) -> None:
    before = row_counts()
    status, _ = refused(world.client.get("/api/v1/mailboxes/alice/messages", HTTP_AUTHORIZATION=header))
    assert status == 401
    assert row_counts() == before


# ------------------------------------------------------------------------------------------------------ webhook

NOT_NODE_EVENTS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"event=MAXIMA", id="a form"),
    pytest.param(b"[]", id="a list"),
    pytest.param(b'{"event": 1}', id="event not text"),
    pytest.param(b'{"event": "MAXIMA"}', id="no data"),
    pytest.param(b'{"event": "MAXIMA", "data": []}', id="data a list"),
    pytest.param("bad sender", id="from not a key"),
    pytest.param("bad msgid", id="msgid not 32 bytes of hex"),
    pytest.param("bad hex", id="data not hex"),
    pytest.param("odd hex", id="data odd hex"),
    pytest.param("timemilli text", id="timemilli text"),
    pytest.param("application spaces", id="application with spaces"),
]


def _broken_event(world: World, how: str) -> dict[str, Any]:
    event = hook_event(world.stranger.key, deliver_body("alice"))
    data = event["data"]
    change = {
        "bad sender": ("from", KEY),
        "bad msgid": ("msgid", "0x1234"),
        "bad hex": ("data", "0xZZ"),
        "odd hex": ("data", "0xABC"),
        "timemilli text": ("timemilli", "soon"),
        "application spaces": ("application", "mns sync"),
    }[how]
    data[change[0]] = change[1]
    return event


@pytest.mark.parametrize("body", NOT_NODE_EVENTS)
def test_webhook_bodies_that_are_not_node_events_are_refused_400_and_nothing_is_written(
    world: World, body: bytes | str
) -> None:
    before = row_counts()
    raw = json.dumps(_broken_event(world, body)).encode() if isinstance(body, str) else body
    assert refused(hook_post(world.client, raw)) == (400, "hook_malformed")
    assert row_counts() == before


# ------------------------------------------------------------------------------------------- Maxima mns messages


def _maxima(world: World, kind: str) -> tuple[Owner, bytes | dict[str, Any]]:
    """(sender, payload) of a Maxima ``mns`` message that is not our protocol, or is ours but must be refused."""
    deliver, alice = deliver_body("alice"), world.alice.owner
    return {
        "not json": (world.stranger, b"hello, gateway"),
        "json list": (world.stranger, b"[1, 2]"),
        "no type": (world.stranger, {"v": 1, "to": "alice"}),
        "unknown type": (world.stranger, {"v": 1, "type": "pwn"}),
        "type forging a log line": (world.stranger, {"v": 1, "type": "x\n2026-01-01 INFO forged line"}),
        "field forging a log line": (
            world.alice.owner,
            {**Answer(challenge=world.challenge, code="a" * 32).to_dict(), "x\nINFO forged": 1},
        ),
        "deliver no id": (world.stranger, {key: value for key, value in deliver.items() if key != "id"}),
        "handshake junk": (alice, {"v": 1, "type": "handshake", "challenge": ["x"], "code": 1}),
        "handshake unknown": (alice, Answer(challenge="nosuchchallenge1234567", code="a" * 32).to_dict()),
        "statement junk": (alice, {"v": 1, "type": "statement", "statement": {"v": 1}, "signature": "0xZZ"}),
        "statement bad signature": (alice, {"v": 1, "type": "statement", **_update(world, signer=world.stranger)}),
        "statement forged signature": (
            alice,
            {"v": 1, "type": "statement", **_update(world, signature="0x" + "00" * 128)},
        ),
        "statement from another key": (world.stranger, {"v": 1, "type": "statement", **_update(world)}),
        # Ours, but refused: the sender gets the refusal back over Maxima, and nothing else is written.
        "register junk": (world.stranger, {"v": 1, "type": "register", "statement": "x", "signature": "0x00"}),
        "register no address": (
            world.stranger,
            {"v": 1, "type": "register", **world.stranger.register("bob").to_dict()},
        ),
        "register for another key": (
            world.stranger,
            {
                "v": 1,
                "type": "register",
                **_register(world) | {"address": alice.address, **alice.register("carol").to_dict()},
            },
        ),
        "deliver bad hex": (world.stranger, {**deliver, "ciphertext": "0xZZ"}),
        "deliver control name": (world.stranger, {**deliver, "to": "al\u0007ice"}),
        "deliver unknown name": (world.stranger, {**deliver, "to": "nobody"}),
        "deliver huge": (world.stranger, {**deliver, "ciphertext": "0x" + "00" * (64 * 1024 + 1)}),
    }[kind]


NOT_OURS = [
    "not json",
    "json list",
    "no type",
    "unknown type",
    "type forging a log line",
    "field forging a log line",
    "deliver no id",
    "handshake junk",
    "handshake unknown",
    "statement junk",
    "statement bad signature",
    "statement forged signature",
    "statement from another key",
]
REFUSED = [
    "register junk",
    "register no address",
    "register for another key",
    "deliver bad hex",
    "deliver control name",
    "deliver unknown name",
    "deliver huge",
]


def _post_maxima(world: World, kind: str, capture: Any) -> InboundEvent:
    sender, payload = _maxima(world, kind)
    with capture(execute=True):
        response = hook_post(world.client, hook_event(sender.key, payload))
    assert response.status_code == 200, response.content
    return InboundEvent.objects.get(id=json.loads(response.content)["id"])


@pytest.mark.parametrize("kind", NOT_OURS)
def test_maxima_payloads_that_are_not_our_protocol_are_ignored_with_a_log_line_and_nothing_else_written(
    world: World, kind: str, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    before = row_counts()
    caplog.set_level(logging.INFO)
    event = _post_maxima(world, kind, django_capture_on_commit_callbacks)
    assert event.status == "ignored", event.last_error
    assert event.last_error
    after = row_counts()
    assert after.pop("maxima.InboundEvent") == before.pop("maxima.InboundEvent") + 1
    assert after == before
    lines = [record.getMessage() for record in caplog.records if f"inbound event {event.id}" in record.getMessage()]
    assert len(lines) == 1, caplog.text
    assert "\n" not in lines[0]


@pytest.mark.parametrize("kind", REFUSED)
def test_bad_protocol_messages_get_one_refusal_back_and_nothing_else_is_written(
    world: World, kind: str, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    before = row_counts()
    caplog.set_level(logging.INFO)
    event = _post_maxima(world, kind, django_capture_on_commit_callbacks)
    assert event.status == "done", event.last_error
    after = row_counts()
    assert after.pop("maxima.InboundEvent") == before.pop("maxima.InboundEvent") + 1
    assert after.pop("maxima.OutboundMessage") == before.pop("maxima.OutboundMessage") + 1
    assert after == before
    reply = json.loads(bytes(OutboundMessage.objects.latest("id").payload))
    assert reply["type"] in {"register-refused", "receipt"}
    assert reply.get("status", "refused") == "refused"
    assert reply["reason"]
    assert f"over Maxima: {reply['reason']}" in caplog.text
