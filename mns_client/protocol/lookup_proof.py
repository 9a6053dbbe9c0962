"""What a client checks of a lookup's ``transparency`` object (``docs/protocol.md``, "Transparency"), against the
root it read itself from the chain. Django-free: ``mns whois``, the SDK and the vectors' tests share it, and the
Dapp's ``transparency.js`` follows it outcome for outcome.

A lookup (``GET /api/v1/names/{name}``) carries, besides the name's current signed statement, one of:

- ``{"root": {v,cutoff,size,root}, "statement": {"statement":{…},"signature":"0x…"}, "proof": {…},
  "current": bool}``: the gateway's root for the cut-off of the latest root on chain, the name's statement at
  that cut-off, its inclusion proof, and whether it is the current statement;
- ``{"status": "no_root"}``: the gateway has no root for the chain's cut-off;
- ``{"status": "not_in_directory", "root": {…}, "bucket": {"entries": [[name, "0x…"], …], "top": […]}}``: the
  name had no statement at that cut-off, and its whole bucket at the cut-off shows it (an older gateway leaves
  ``bucket`` out: then nothing proves the answer).

``check_lookup`` turns that into one ``DirectoryCheck``: an outcome code, a sentence, and whether the gateway's
answer is proven wrong (``failed``: a lying gateway). It never raises for a bad answer: a bad answer is an outcome.
"""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mns_client.protocol.errors import MNSError
from mns_client.protocol.statements import SignedStatement, StatementInvalid, check_successor
from mns_client.protocol.transparency import ProofInvalid, Root, SignedRoot, check_absent, check_in_directory

# The outcomes. The first group holds up; the second cannot say; the last proves the gateway's answer wrong.
IN_DIRECTORY = "in_directory"  # the current statement is in the published directory
CHANGED_SINCE = "changed_since"  # an earlier statement is; the current one is a later, valid change
NOT_YET = "not_yet"  # not in the directory: the name's statement was issued after the cut-off
NO_NODE = "no_node"  # the chain could not be read through the user's node
NO_ROOT = "no_root"  # no root on chain yet
NO_PROOF = "no_proof"  # the gateway gave no proof (an older gateway, or none for the chain's root yet)
NOT_IN_DIRECTORY = "not_in_directory"  # the gateway says the name is not in, though dated before the cut-off
ROOT_DIFFERS = "root_differs"
PROOF_INVALID = "proof_invalid"
STATEMENT_INVALID = "statement_invalid"
NOT_CURRENT = "not_current"
ANSWER_INVALID = "answer_invalid"
FAILURES = frozenset({ROOT_DIFFERS, PROOF_INVALID, STATEMENT_INVALID, NOT_CURRENT, ANSWER_INVALID})

MAX_HISTORY = 1000  # statements walked to show how a name changed hands since the cut-off


@dataclass(frozen=True)
class DirectoryCheck:
    """One outcome of ``check_lookup``: ``status`` (one of the codes above), a sentence, and the ``reason`` code
    of the refused part (a ``ProofInvalid`` or ``StatementInvalid`` code) when there is one."""

    status: str
    detail: str
    root: Root | None = None
    signers: tuple[str, ...] = ()  # the keys whose signature over the chain's root verifies
    listed: int = 0  # the signers the chain's root lists
    reason: str | None = None
    seq: int | None = None  # the seq of the statement proven in the directory
    bulletin: int | None = field(default=None, compare=False)  # the bulletin's seq the root came from

    @property
    def failed(self) -> bool:
        """The gateway's answer is proven wrong: it lies, or serves a forged or broken proof."""
        return self.status in FAILURES

    @property
    def proven(self) -> bool:
        return self.status in (IN_DIRECTORY, CHANGED_SINCE)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "detail": self.detail, "failed": self.failed}
        if self.root is not None:
            body["root"] = self.root.to_dict()
            body["signers"] = list(self.signers)
            body["signers_listed"] = self.listed
        for key in ("reason", "seq", "bulletin"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        return body


def unread(detail: str) -> DirectoryCheck:
    """The chain could not be read (no node, or the node refused): nothing is checked."""
    return DirectoryCheck(NO_NODE, f"not checked: the chain could not be read through your node ({detail})")


def check_lookup(
    *,
    name: str,
    current: SignedStatement,
    answer: Any,
    chain_root: SignedRoot | None,
    bulletin: int | None = None,
    between: Callable[[], Sequence[SignedStatement]] | None = None,
) -> DirectoryCheck:
    """The outcome for ``name``, whose current statement ``current`` the caller already verified, given the
    lookup's ``transparency`` value (``answer``, ``None`` when absent) and the root on chain (``None``: none yet).

    ``between`` gives the name's statements after the directory's, up to the current one (the history), and is
    asked only when the owner changed since the cut-off: then the change must be a valid chain of statements."""
    if chain_root is None:
        return DirectoryCheck(NO_ROOT, "not checked: there is no directory root on chain yet", bulletin=bulletin)
    signers = tuple(chain_root.verified_signers())
    base = {"root": chain_root.root, "signers": signers, "listed": len(chain_root.signers), "bulletin": bulletin}
    try:
        return _check(name, current, answer, chain_root.root, between, base)
    except _Outcome as outcome:
        return DirectoryCheck(outcome.status, outcome.detail, reason=outcome.reason, **base)


class _Outcome(MNSError):
    def __init__(self, status: str, detail: str, reason: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.reason = status, detail, reason


def _check(
    name: str,
    current: SignedStatement,
    answer: Any,
    root: Root,
    between: Callable[[], Sequence[SignedStatement]] | None,
    base: dict[str, Any],
) -> DirectoryCheck:
    if answer is None:
        raise _Outcome(NO_PROOF, "not checked: the gateway gave no proof against the directory root")
    if not isinstance(answer, dict):
        raise _Outcome(ANSWER_INVALID, "the gateway's transparency answer is not a JSON object")
    status = answer.get("status")
    if status == "no_root" and set(answer) == {"status"}:
        raise _Outcome(NO_PROOF, "not checked: the gateway has no proof for the root on chain yet")
    answered = _root_of(answer)
    if answered != root:
        if answered.cutoff == root.cutoff:
            raise _Outcome(ROOT_DIFFERS, "the gateway's root differs from the one on chain: this gateway may be lying")
        raise _Outcome(
            ROOT_DIFFERS,
            f"the gateway's root differs from the one on chain (its cut-off is {_when(answered.cutoff)}, the chain's "
            f"{_when(root.cutoff)}): this gateway may be lying, or it or your node has not read the newest bulletin "
            "yet; try again in a minute",
            "cutoff_differs",
        )
    if status is not None:
        return _not_in(name, answer, current, root, base)
    if set(answer) != {"root", "statement", "proof", "current"} or not isinstance(answer["current"], bool):
        raise _Outcome(
            ANSWER_INVALID, "the gateway's transparency answer has not exactly root, statement, proof, current"
        )
    held = _signed(answer["statement"])
    try:
        check_in_directory(root=root, name=name, statement=held.statement, proof=answer["proof"])
    except ProofInvalid as bad:
        raise _Outcome(PROOF_INVALID, f"the gateway's proof does not hold: {bad.message}", bad.code) from None
    if answer["current"]:
        if held != current:
            raise _Outcome(NOT_CURRENT, "the gateway proves another statement than the one it serves as current")
        text = f"in the published directory ({_in_text(root, base['signers'])})"
        return DirectoryCheck(IN_DIRECTORY, text, seq=held.statement.seq, **base)
    _check_later(held, current, root, between)
    text = (
        f"changed since the published directory: seq {held.statement.seq} is in it "
        f"({_in_text(root, base['signers'])}); seq {current.statement.seq} {_later_text(current, root)}"
    )
    return DirectoryCheck(CHANGED_SINCE, text, seq=held.statement.seq, **base)


def _not_in(
    name: str, answer: dict[str, Any], current: SignedStatement, root: Root, base: dict[str, Any]
) -> DirectoryCheck:
    if answer.get("status") != "not_in_directory" or set(answer) - {"bucket"} != {"status", "root"}:
        raise _Outcome(ANSWER_INVALID, "the gateway's transparency answer has an unknown status")
    proven = "bucket" in answer
    if proven:
        try:
            check_absent(root=root, name=name, absence=answer["bucket"])
        except ProofInvalid as bad:
            raise _Outcome(
                PROOF_INVALID,
                f"the gateway's proof that the name is not in the directory does not hold: {bad.message}",
                bad.code,
            ) from None
    if current.statement.issued_at > root.cutoff:
        if proven:
            text = "not in the published directory yet: registered after its cut-off (its bucket shows it absent then)"
        else:
            text = "not in the published directory yet: registered after its cut-off, so nothing proves this answer yet"
        return DirectoryCheck(NOT_YET, text, **base)
    if proven:
        text = (
            "not in the published directory, proven by its bucket, though its statement is dated before the cut-off: "
            "it reached the network after the root was made"
        )
    else:
        text = (
            "the gateway says it is not in the published directory, though its statement is dated before the "
            "cut-off: not proven (it reached the network late, or the gateway hides it)"
        )
    return DirectoryCheck(NOT_IN_DIRECTORY, text, **base)


def _root_of(answer: dict[str, Any]) -> Root:
    try:
        return Root.from_dict(answer.get("root"))
    except ProofInvalid as bad:
        raise _Outcome(ANSWER_INVALID, f"the gateway's root is malformed: {bad.message}", bad.code) from None


def _signed(raw: Any) -> SignedStatement:
    try:
        held = SignedStatement.from_dict(raw) if isinstance(raw, dict) else SignedStatement.from_dict({})
        held.verify()
    except StatementInvalid as bad:
        raise _Outcome(
            STATEMENT_INVALID, f"the statement the gateway proves is not validly signed: {bad.message}", bad.code
        ) from None
    return held


def _later_text(current: SignedStatement, root: Root) -> str:
    if current.statement.issued_at > root.cutoff:
        return "was issued after its cut-off"
    return "is dated before its cut-off but reached the network after the root was made"


def _check_later(
    held: SignedStatement,
    current: SignedStatement,
    root: Root,
    between: Callable[[], Sequence[SignedStatement]] | None,
) -> None:
    """The current statement is a later one of the same name than the proven one: a higher seq; and when another
    key holds the name now, a valid chain of signed statements leads there. It may be dated before the cut-off: a
    statement that reached the network after the root was made (replicated late, after a partition) is not in it,
    and every statement of the chain is the holder's own signed word, so no gateway can make one up."""
    old, new = held.statement, current.statement
    if new.seq <= old.seq:
        raise _Outcome(
            NOT_CURRENT,
            f"the gateway serves seq {new.seq} as current, but seq {old.seq} is in the directory and the current "
            "one is not a later change",
        )
    if new.owner == old.owner or (old.op == "release" and new.op == "register"):
        return
    chain = [] if between is None else list(between())[:MAX_HISTORY]
    steps = [held, *sorted((s for s in chain if old.seq < s.statement.seq < new.seq), key=_seq), current]
    try:
        for previous, following in itertools.pairwise(steps):
            following.verify()
            check_successor(previous.statement, following.statement)
    except StatementInvalid as bad:
        raise _Outcome(
            NOT_CURRENT,
            "another key holds the name than the one in the directory, and the gateway cannot show a valid chain of "
            f"statements leading there ({bad.code})",
            bad.code,
        ) from None


def _seq(signed: SignedStatement) -> int:
    return signed.statement.seq


def _in_text(root: Root, signers: Sequence[str]) -> str:
    return f"root of {_when(root.cutoff)}, signed by {len(signers)} gateway{'' if len(signers) == 1 else 's'}"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
