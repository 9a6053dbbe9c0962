"""One spelling on the wire, for every message type: ``true``/``false`` is never an integer, ``null`` is never an
absent key, and an absent optional key is still fine. Each format is read through ``mns_client.protocol.fields``,
so one table covers them all."""

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mns_client.protocol import sync
from mns_client.protocol.entrypoints import BulletinInvalid, parse_bulletin
from mns_client.protocol.envelope import EnvelopeInvalid, Letter, SignedLetter, open_letter
from mns_client.protocol.handshake import Answer, HandshakeMessageInvalid, Result
from mns_client.protocol.mailbox import (
    AccessTokenMessage,
    Deliver,
    Forwarded,
    MailboxMessageInvalid,
    Receipt,
    Register,
    RegisterChallenge,
    RegisterRefused,
    access_token_read,
)
from mns_client.protocol.statements import NameStatement, SignedStatement, StatementInvalid, statement_message
from testsupport import maxima_fixture

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"
STATEMENTS = json.loads((VECTORS / "statements.json").read_text())["vectors"]
ENVELOPES = json.loads((VECTORS / "envelopes.json").read_text())
ADDRESS = maxima_fixture("01-")["parsed"]["response"]["p2pidentity"]
KEY = STATEMENTS[0]["owner_publickey_hex"]
CHALLENGE = "fn51u4icL2jhcQcsF-TYMQ"
DELIVERY_ID = "k3Jd8_x-Qm2VbN7aL0pRtY"
ENTRY = {
    "maxima_address": "MAX#" + KEY + "#" + ADDRESS.partition("@")[0] + "@127.0.0.1:9001",
    "identity_key": KEY,
    "api_url": "https://gw.example/",
}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Format:
    """One wire format: a valid body, its parser, what it raises, its integer fields and optional keys.

    A parser that takes bytes (``Receipt.from_bytes``…) is wrapped by ``_bytes`` and is given the body as JSON."""

    name: str
    body: Callable[[], Any]
    parse: Callable[[Any], Any]
    error: type[Exception] | tuple[type[Exception], ...]
    integers: tuple[Path_, ...]
    optional: tuple[Path_, ...] = ()

    @property
    def reads_bytes(self) -> bool:
        return isinstance(self.parse, _Bytes)

    def read(self, body: Any) -> Any:
        return self.parse(json.dumps(body).encode()) if self.reads_bytes else self.parse(body)


@dataclass(frozen=True)
class _Bytes:
    parse: Callable[[bytes], Any]

    def __call__(self, data: bytes) -> Any:
        return self.parse(data)


def _bytes(parse: Callable[[bytes], Any]) -> _Bytes:
    return _Bytes(parse)


def _signed() -> dict[str, Any]:
    return {"statement": dict(STATEMENTS[0]["statement"]), "signature": STATEMENTS[0]["signature_hex"]}


def _sync(message_type: str, **fields: Any) -> Callable[[], dict[str, Any]]:
    return lambda: {"v": 1, "type": message_type, **fields}


def _letter() -> dict[str, Any]:
    return {**ENVELOPES["vectors"][0]["letter"], "from_name": "bob", "subject": "lunch"}


def _signed_letter() -> dict[str, Any]:
    return {"letter": _letter(), "sig": ENVELOPES["vectors"][0]["signature_hex"]}


FORMATS = [
    Format(
        "deliver",
        lambda: {"v": 1, "type": "deliver", "id": DELIVERY_ID, "to": "alice", "scheme": "nacl-sealedbox-v1",
                 "ciphertext": "0x01AB", "reply_to": ADDRESS},
        Deliver.from_dict, MailboxMessageInvalid, (("v",),), (("reply_to",),),
    ),
    Format(
        "receipt",
        lambda: {"v": 1, "type": "receipt", "id": DELIVERY_ID, "status": "refused", "message_id": "m1",
                 "reason": "over_quota", "detail": "full"},
        _bytes(Receipt.from_bytes), MailboxMessageInvalid, (("v",),),
        (("message_id",), ("reason",), ("detail",)),
    ),
    Format(
        "forwarded",
        lambda: {"v": 1, "type": "forwarded", "name": "alice", "message_id": "m1", "sender": KEY,
                 "sender_verified": True, "scheme": "maxima-rsa-v1", "ciphertext": "0x00FF",
                 "received_at": 1795660441638},
        _bytes(Forwarded.from_bytes), MailboxMessageInvalid, (("v",), ("received_at",)),
    ),
    Format(
        "register",
        lambda: {"v": 1, "type": "register", **_signed(), "address": ADDRESS, "reply_to": ADDRESS,
                 "verifier_hash": "ab" * 32},
        Register.from_dict, (MailboxMessageInvalid, StatementInvalid),
        (("v",), ("statement", "v"), ("statement", "seq"), ("statement", "issued_at")),
        (("reply_to",), ("verifier_hash",), ("statement", "payment_address")),
    ),
    Format(
        "register-challenge",
        lambda: {"v": 1, "type": "register-challenge", "name": "alice", "challenge": CHALLENGE, "code": "c0de",
                 "expires_at": 1795660441638},
        _bytes(RegisterChallenge.from_bytes), MailboxMessageInvalid, (("v",), ("expires_at",)),
    ),
    Format(
        "register-refused",
        lambda: {"v": 1, "type": "register-refused", "name": "alice", "reason": "name_taken", "detail": "Taken."},
        _bytes(RegisterRefused.from_bytes), MailboxMessageInvalid, (("v",),),
    ),
    Format(
        "access-token",
        lambda: {"v": 1, "type": "access-token", "name": "alice", "token_id": "abcdefghijklmnop", "token": "0x01"},
        _bytes(AccessTokenMessage.from_bytes), MailboxMessageInvalid, (("v",),),
    ),
    Format(
        "access token plaintext",
        lambda: {"token_id": "abcdefghijklmnop", "secret": "s3cret"},
        _bytes(access_token_read), MailboxMessageInvalid, (),
    ),
    Format(
        "handshake",
        lambda: {"v": 1, "type": "handshake", "challenge": CHALLENGE, "code": "c0de", "reply_to": ADDRESS},
        Answer.from_dict, HandshakeMessageInvalid, (("v",),), (("reply_to",),),
    ),
    Format(
        "handshake-result",
        lambda: {"v": 1, "type": "handshake-result", "challenge": CHALLENGE, "status": "verified"},
        _bytes(Result.from_bytes), HandshakeMessageInvalid, (("v",),), (("reason",),),
    ),
    Format(
        "statement message",
        lambda: {"v": 1, "type": "statement", **_signed()},
        statement_message, StatementInvalid,
        (("v",), ("statement", "v"), ("statement", "seq"), ("statement", "issued_at")),
        (("statement", "payment_address"),),
    ),
    Format(
        "name statement",
        lambda: {**STATEMENTS[0]["statement"], "payment_address": "0x" + "AB" * 32},
        NameStatement.from_dict, StatementInvalid, (("v",), ("seq",), ("issued_at",)), (("payment_address",),),
    ),
    Format(
        "signed statement",
        _signed, SignedStatement.from_dict, StatementInvalid,
        (("statement", "v"), ("statement", "seq"), ("statement", "issued_at")),
    ),
    Format(
        "letter",
        _letter, Letter.from_dict, EnvelopeInvalid, (("v",), ("sent_at",)), (("from_name",), ("subject",)),
    ),
    Format(
        "signed letter plaintext",
        _signed_letter, _bytes(SignedLetter.from_bytes), EnvelopeInvalid,
        (("letter", "v"), ("letter", "sent_at")), (("letter", "from_name"), ("letter", "subject")),
    ),
    Format(
        "claim",
        _sync("claim", claim_id="c1", name="alice", owner=KEY, expires_at=1795660441638, skeleton="a1ice"),
        sync.check, sync.SyncMessageInvalid, (("v",), ("expires_at",)), (("skeleton",),),
    ),
    Format("claim-ack", _sync("claim-ack", claim_id="c1"), sync.check, sync.SyncMessageInvalid, (("v",),)),
    Format(
        "claim-nack", _sync("claim-nack", claim_id="c1", reason="name_taken"), sync.check, sync.SyncMessageInvalid,
        (("v",),), (("reason",),),
    ),
    Format("commit", _sync("commit", claim_id="c1"), sync.check, sync.SyncMessageInvalid, (("v",),)),
    Format("abort", _sync("abort", claim_id="c1"), sync.check, sync.SyncMessageInvalid, (("v",),)),
    Format(
        "ops", _sync("ops", origin=KEY, head=3, ops=[]), sync.check, sync.SyncMessageInvalid, (("v",), ("head",)),
    ),
    Format(
        "pull", _sync("pull", origin=KEY, since=0, limit=100), sync.check, sync.SyncMessageInvalid,
        (("v",), ("since",), ("limit",)), (("limit",),),
    ),
    Format(
        "root", _sync("root", cutoff=1795660440000, size=3, root="0x" + "AB" * 32, signature="0x" + "CD" * 128),
        sync.check, sync.SyncMessageInvalid, (("v",), ("cutoff",), ("size",)),
    ),
    Format(
        "ask", _sync("ask", ask="0f" * 16, question={"q": "items", "set": "names", "prefix": "3f", "after": "3f0a"}),
        sync.check, sync.SyncMessageInvalid, (("v",),), (("question", "prefix"), ("question", "after")),
    ),
    Format("told", _sync("told", ask="0f" * 16, answer={"roots": {}}), sync.check, sync.SyncMessageInvalid, (("v",),)),
    Format(
        "told (a refusal)", _sync("told", ask="0f" * 16, error="set_forbidden", detail="not a replica"),
        sync.check, sync.SyncMessageInvalid, (("v",),), (("detail",),),
    ),
    Format(
        "op",
        lambda: {"seq": 1, "kind": "statement", "payload": {}, "created_at": 1795660441638},
        sync.check_op, sync.SyncMessageInvalid, (("seq",), ("created_at",)),
    ),
    Format(
        "entry-point bulletin",
        lambda: {"v": 1, "seq": 3, "issued_at": 1795661876042, "entries": [ENTRY]},
        _bytes(parse_bulletin), BulletinInvalid, (("v",), ("seq",), ("issued_at",)),
    ),
]  # fmt: skip


def _set(body: Any, path: Path_, value: Any) -> Any:
    changed = copy.deepcopy(body)
    *parents, last = path
    target = changed
    for key in parents:
        target = target[key]
    if value is _ABSENT:
        target.pop(last, None)
    else:
        target[last] = value
    return changed


_ABSENT = object()


def _label(path: Path_) -> str:
    return ".".join(str(key) for key in path)


def _cases(attribute: str, values: tuple[Any, ...]) -> list[Any]:
    return [
        pytest.param(
            fmt, path, value, id=f"{fmt.name}:{_label(path)}={'absent' if value is _ABSENT else json.dumps(value)}"
        )
        for fmt in FORMATS
        for path in getattr(fmt, attribute)
        for value in values
    ]


@pytest.mark.parametrize("fmt", FORMATS, ids=[fmt.name for fmt in FORMATS])
def test_the_valid_body_of_every_format_is_read(fmt: Format) -> None:
    fmt.read(fmt.body())


@pytest.mark.parametrize(("fmt", "path", "value"), _cases("integers", (True, False)))
def test_true_or_false_for_an_integer_field_is_refused(fmt: Format, path: Path_, value: bool) -> None:
    with pytest.raises(fmt.error):
        fmt.read(_set(fmt.body(), path, value))


@pytest.mark.parametrize(("fmt", "path", "value"), _cases("integers", (1.0,)))
def test_a_float_for_an_integer_field_is_refused_even_when_it_is_whole(fmt: Format, path: Path_, value: float) -> None:
    with pytest.raises(fmt.error):
        fmt.read(_set(fmt.body(), path, value))


@pytest.mark.parametrize(("fmt", "path", "value"), _cases("optional", (None,)))
def test_null_for_an_optional_key_is_refused(fmt: Format, path: Path_, value: None) -> None:
    with pytest.raises(fmt.error):
        fmt.read(_set(fmt.body(), path, value))


@pytest.mark.parametrize(("fmt", "path", "value"), _cases("optional", (_ABSENT,)))
def test_an_optional_key_left_out_is_accepted(fmt: Format, path: Path_, value: object) -> None:
    fmt.read(_set(fmt.body(), path, value))


@pytest.mark.parametrize("fmt", FORMATS, ids=[fmt.name for fmt in FORMATS])
def test_an_unknown_key_is_refused(fmt: Format) -> None:
    with pytest.raises(fmt.error):
        fmt.read({**fmt.body(), "extra": 1})


BYTE_FORMATS = [fmt for fmt in FORMATS if fmt.reads_bytes]


@pytest.mark.parametrize("fmt", BYTE_FORMATS, ids=[fmt.name for fmt in BYTE_FORMATS])
def test_a_key_written_twice_is_refused_even_with_the_same_value(fmt: Format) -> None:
    body = fmt.body()
    first = next(iter(body))
    doubled = "{" + json.dumps(first) + ":" + json.dumps(body[first]) + "," + json.dumps(body)[1:]
    assert json.loads(doubled) == body  # a lenient reader would take it

    with pytest.raises(fmt.error):
        fmt.parse(doubled.encode())


@pytest.mark.parametrize(
    "body",
    [
        {"ask": "0F" * 16, "question": {"q": "position"}},
        {"ask": "0f" * 15, "question": {"q": "position"}},
        {"ask": "0f" * 16, "question": {"q": "everything"}},
        {"ask": "0f" * 16, "question": {"q": "nodes", "set": "names"}},
        {"ask": "0f" * 16, "question": {"q": "position", "set": "names"}},
        {"ask": "0f" * 16, "question": ["position"]},
    ],
)
def test_an_ask_with_a_bad_id_or_question_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(sync.SyncMessageInvalid):
        sync.check({"v": 1, "type": "ask", **body})


@pytest.mark.parametrize(
    "body",
    [{}, {"answer": {}, "error": "x"}, {"answer": {}, "detail": "x"}, {"answer": []}, {"detail": "x"}],
)
def test_a_told_is_an_answer_or_a_refusal_never_both_nor_neither(body: dict[str, Any]) -> None:
    with pytest.raises(sync.SyncMessageInvalid):
        sync.check({"v": 1, "type": "told", "ask": "0f" * 16, **body})


def test_a_handshake_answer_with_v_true_or_reply_to_null_is_refused_like_a_delivery() -> None:
    answer = {"v": 1, "type": "handshake", "challenge": CHALLENGE, "code": "c0de"}
    deliver = {"v": 1, "type": "deliver", "id": DELIVERY_ID, "to": "alice", "scheme": "s", "ciphertext": "0x01"}

    for change in ({"v": True}, {"reply_to": None}):
        with pytest.raises(HandshakeMessageInvalid):
            Answer.from_dict({**answer, **change})
        with pytest.raises(MailboxMessageInvalid):
            Deliver.from_dict({**deliver, **change})
    assert Answer.from_dict(answer).reply_to is None
    assert Deliver.from_dict(deliver).reply_to is None


def test_the_one_nullable_key_is_read_as_none_and_still_cannot_be_left_out() -> None:
    body = {"v": 1, "type": "register-refused", "name": None, "reason": "malformed", "detail": "not JSON"}

    assert RegisterRefused.from_bytes(json.dumps(body).encode()).name is None
    with pytest.raises(MailboxMessageInvalid, match="name: is missing"):
        RegisterRefused.from_bytes(json.dumps({k: v for k, v in body.items() if k != "name"}).encode())


@pytest.mark.parametrize("index", range(len(STATEMENTS)))
def test_every_statement_vector_still_parses(index: int) -> None:
    vector = STATEMENTS[index]
    signed = SignedStatement.from_dict({"statement": vector["statement"], "signature": vector["signature_hex"]})

    signed.verify()
    assert signed.statement.canonical() == vector["canonical"].encode()


@pytest.mark.parametrize("index", range(len(ENVELOPES["vectors"])))
def test_every_envelope_vector_still_parses(index: int) -> None:
    vector = ENVELOPES["vectors"][index]
    signed = SignedLetter.from_bytes(vector["plaintext"].encode())

    signed.verify()
    assert signed.letter == Letter.from_dict(vector["letter"])


@pytest.mark.parametrize("index", range(len(ENVELOPES["invalid"])))
def test_every_invalid_envelope_vector_is_still_refused_with_its_code(index: int) -> None:
    case = ENVELOPES["invalid"][index]

    with pytest.raises(EnvelopeInvalid) as caught:
        open_letter(case["plaintext"].encode(), name=case["read_as"])

    assert caught.value.code == case["code"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("root", "0x" + "AB" * 31), ("root", "AB" * 32 + "00"), ("signature", "0x" + "ZZ" * 128), ("signature", 7)],
)
def test_a_root_message_with_a_root_or_signature_of_the_wrong_form_is_refused(field: str, value: Any) -> None:
    body = {"v": 1, "type": "root", "cutoff": 1, "size": 0, "root": "0x" + "AB" * 32, "signature": "0x" + "CD" * 128}
    with pytest.raises(sync.SyncMessageInvalid):
        sync.check({**body, field: value})
