"""Secrets: never in a log line, hashed at rest, compared in constant time.

A whole flow runs through the real doors (REST through Django's test client, Maxima through the webhook, Celery
in-process): registration with its handshake, the access token delivered, a delivery, a read with a session and
with the access token, a forward. Every log record of every logger at DEBUG, formatted by the project's
formatters, is then searched for every secret the flow used, in every spelling; and every stored row for the
secrets the gateway must only keep hashed.
"""

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from handshake.models import Challenge, Session
from mailboxes.models import AccessToken, Message
from mailboxes.tests.support import GATEWAY_ADDRESS, FakeNode, Owner, send_all
from maxima.models import NodeState
from mns_client.protocol.crypto import seal
from mns_client.protocol.handshake import Answer, new_verifier, secret_hash, verifier_hash
from mns_client.protocol.mailbox import Deliver, access_token_header, access_token_open, new_delivery_id
from mns_site.tests.security_support import all_logs, hook_event, hook_post, spellings
from registry.tests.support import GATEWAY

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _gateway(db: None) -> None:
    NodeState.objects.create(
        pk=1, reachable=True, publickey=GATEWAY, localidentity=GATEWAY_ADDRESS, p2pidentity=GATEWAY_ADDRESS
    )
    cache.clear()


def _json(response: Any) -> Any:
    assert response.status_code < 300, response.content
    return json.loads(response.content)


class Flow:
    """Plays the client, the owner's node and a sender's node; remembers every secret it saw."""

    def __init__(self, client: Client, capture: Any) -> None:
        self.client, self.capture = client, capture
        self.secrets: dict[str, str | bytes] = {}

    def maxima(self, sender: Owner, body: dict) -> None:
        with self.capture(execute=True):
            assert hook_post(self.client, hook_event(sender.key, body)).status_code == 200

    def handshake(self, owner: Owner, name: str, purpose: str) -> str:
        verifier = new_verifier()
        issued = _json(
            self.client.post(
                "/api/v1/handshakes",
                {"name": name, "purpose": purpose, "verifier_hash": verifier_hash(verifier)},
                content_type="application/json",
            )
        )
        self.maxima(owner, Answer(challenge=issued["id"], code=issued["code"]).to_dict())
        opened = _json(
            self.client.post(
                f"/api/v1/handshakes/{issued['id']}/session", {"verifier": verifier}, content_type="application/json"
            )
        )
        self.secrets |= {f"{purpose} code": issued["code"], f"{purpose} verifier": verifier}
        self.secrets[f"{purpose} session"] = opened["token"]
        return opened["token"]


def test_a_whole_flow_logs_no_key_token_code_verifier_or_ciphertext(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    alice, sender = Owner.fresh(), Owner.fresh()
    flow = Flow(client, django_capture_on_commit_callbacks)
    with all_logs() as logs:
        # Registration: the request, the owner's node answering the register handshake, the token delivered.
        verifier = new_verifier()
        request = {
            **alice.register("alice").to_dict(),
            "address": alice.address,
            "verifier_hash": verifier_hash(verifier),
        }
        with django_capture_on_commit_callbacks(execute=True):
            pending = _json(client.post("/api/v1/mailboxes", request, content_type="application/json"))
        code = pending["handshake"]["code"]
        flow.maxima(alice, Answer(challenge=pending["handshake"]["id"], code=code).to_dict())
        token = AccessToken.objects.get(mailbox__record__name="alice")
        token_id, token_secret = access_token_open(alice.private_key, bytes(token.blob))
        node = FakeNode()
        send_all(node)  # the access token (and the verdict) go out to alice's node
        # A delivery over Maxima, sealed to alice's box key.
        ciphertext = seal(alice.box_public, b"a letter only alice can read")
        flow.maxima(
            sender,
            Deliver(to="alice", id=new_delivery_id(), scheme="nacl-sealedbox-v1", ciphertext=ciphertext).to_dict(),
        )
        assert Message.objects.get().size == len(ciphertext)
        # A read with a session, and with the access token.
        read = flow.handshake(alice, "alice", "read")
        listed = _json(client.get("/api/v1/mailboxes/alice/messages", HTTP_AUTHORIZATION=f"MNS-Session {read}"))
        uid = listed["results"][0]["id"]
        _json(client.get(f"/api/v1/mailboxes/alice/messages/{uid}", HTTP_AUTHORIZATION=f"MNS-Session {read}"))
        _json(
            client.get(
                "/api/v1/mailboxes/alice/messages", HTTP_AUTHORIZATION=access_token_header(token_id, token_secret)
            )
        )
        # A forward to alice's node, delivered.
        forward = flow.handshake(alice, "alice", "forward")
        with django_capture_on_commit_callbacks(execute=True):
            summary = client.post(
                "/api/v1/mailboxes/alice/forward",
                {},
                content_type="application/json",
                HTTP_AUTHORIZATION=f"MNS-Session {forward}",
            )
        assert summary.status_code == 202, summary.content
        send_all(node)
        assert Message.objects.get().state == "forwarded"
    written = logs.getvalue()
    assert "handshake register answer for alice: verified" in written  # the capture saw the flow
    assert "/maxima/hook/<secret>/" in written

    secrets = {
        **flow.secrets,
        "register code": code,
        "register verifier": verifier,
        "access token secret": token_secret,
        "access token header": access_token_header(token_id, token_secret),
        "ciphertext": ciphertext,
        "access token blob": bytes(token.blob),
        "hook secret": settings.MAXIMA_HOOK_SECRET,
        "owner private key": alice.private_key,
        "box private key": alice.box_private,
        "forwarded payloads": b"".join(data for _, data in node.sent[-1:]),
    }
    leaks = [(what, form) for what, secret in secrets.items() for form in spellings(secret) if form in written]
    assert leaks == []


def test_tokens_codes_and_verifiers_are_stored_only_as_their_hashes(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    alice = Owner.fresh()
    flow = Flow(client, django_capture_on_commit_callbacks)
    verifier = new_verifier()
    request = {**alice.register("alice").to_dict(), "address": alice.address, "verifier_hash": verifier_hash(verifier)}
    pending = _json(client.post("/api/v1/mailboxes", request, content_type="application/json"))
    flow.maxima(alice, Answer(challenge=pending["handshake"]["id"], code=pending["handshake"]["code"]).to_dict())
    token_id, token_secret = access_token_open(alice.private_key, bytes(AccessToken.objects.get().blob))
    session = flow.handshake(alice, "alice", "read")

    challenge = Challenge.objects.get(id=pending["handshake"]["id"])
    assert challenge.code_hash == secret_hash(pending["handshake"]["code"])
    assert challenge.verifier_hash == verifier_hash(verifier)
    assert AccessToken.objects.get(token_id=token_id).secret_hash == secret_hash(token_secret)
    assert Session.objects.filter(token_hash=secret_hash(session)).count() == 1
    secrets = {"register code": pending["handshake"]["code"], "verifier": verifier, "token": token_secret}
    secrets |= {key: value for key, value in flow.secrets.items() if "session" in key or "code" in key}
    found = {
        (model._meta.label, what)
        for model in apps.get_models()
        for row in model.objects.values()
        for what, secret in secrets.items()
        if any(form in repr(row) for form in spellings(secret))
    }
    # The transport keeps each Maxima message as the node delivered it (purged after MNS_TRANSPORT_KEEP_HOURS):
    # the owner's answers carry their codes, which are single-use and worth nothing without the owner's node key.
    assert {(label, what) for label, what in found if label != "maxima.InboundEvent"} == set()
    assert {what for _, what in found} <= {"register code", "read code"}


# --------------------------------------------------------------------------------------- constant-time compares

SECRET_WORDS = ("token", "code", "secret", "verifier", "hash", "password")
SCANNED = [
    "*/services.py",
    "*/views.py",
    "*/authentication.py",
    "mns_site/*.py",
    "maxima/*.py",
    "mns_client/*.py",
]
# Comparisons of names that hold no secret though their name says so (each with the reason).
NOT_SECRET = {
    "status_code",  # an HTTP status
    "tokenid",  # a Minima token id: public, on chain
    "token_id",  # the public half of an access token (its secret is compared hashed, in constant time)
}


def _values(node: ast.AST) -> set[str]:
    """The names of the values a side of a comparison is made of: ``token.mailbox.record.name`` is a ``name``,
    ``secret_hash(token)`` a ``token``, ``len(code)`` a number, ``str(row.get("coinid")).upper()`` a ``coinid``."""
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {node.attr}
    if isinstance(node, ast.Constant):
        return {node.value} if isinstance(node.value, str) else set()
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id == "len":
            return set()
        parts = [*node.args, *(keyword.value for keyword in node.keywords)]
        if isinstance(node.func, ast.Attribute) and node.func.attr != "get":  # row.get("coinid") is a coinid
            parts.append(node.func.value)
        return set().union(*(_values(part) for part in parts)) if parts else set()
    if isinstance(node, ast.Subscript):
        return _values(node.value) | _values(node.slice)
    return set()


def _secretish(node: ast.AST) -> bool:
    return any(word in name.lower() for name in _values(node) - NOT_SECRET for word in SECRET_WORDS)


def _literal(node: ast.AST) -> bool:
    """A constant (None, a number, an error code, a type tag): comparing a secret's *kind*, not its value."""
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.Tuple | ast.List | ast.Set) and all(isinstance(e, ast.Constant) for e in node.elts)
    )


def _plain_comparisons(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for op, (left, right) in zip(
            node.ops, zip([node.left, *node.comparators], node.comparators, strict=False), strict=True
        ):
            if not isinstance(op, ast.Eq | ast.NotEq):
                continue
            if _literal(left) or _literal(right):
                continue
            if _secretish(left) or _secretish(right):
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                yield f"{where}:{node.lineno}: {ast.unparse(node)}"


def test_no_secret_is_compared_with_a_plain_equals() -> None:
    files = sorted({path for pattern in SCANNED for path in ROOT.glob(pattern) if "tests" not in path.parts})
    assert len(files) > 20
    found = [line for path in files for line in _plain_comparisons(path)]
    assert found == []


def test_the_scan_finds_a_plain_comparison_of_a_token(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def check(token, stored_hash):\n    return secret_hash(token) == stored_hash\n")
    assert len(list(_plain_comparisons(sample))) == 1
