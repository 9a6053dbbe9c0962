"""The mailbox's access token: issued (its secret only inside a maxencrypt blob to the owner's key), revoked and
checked."""

import hmac
import logging
import secrets

from django.db import transaction
from django.utils import timezone

from core.errors import DomainError
from mailboxes.models import AccessToken, Mailbox
from mailboxes.services.common import MAX_SECRET_CHARS, NameStatus
from maxima.services import outbound_enqueue
from mns_client.protocol.codecs import canonical_public_key, from_hex
from mns_client.protocol.crypto import maxencrypt
from mns_client.protocol.handshake import secret_hash
from mns_client.protocol.mailbox import (
    APPLICATION,
    TOKEN_ID_RE,
    AccessTokenMessage,
    access_token_plaintext,
)

logger = logging.getLogger(__name__)


def access_token_issue(*, mailbox: Mailbox, revoked_by: str = "rotation") -> AccessToken:
    """A new access token for the mailbox, replacing the live one; its blob is queued to the owner's address.

    The secret exists only inside the ``maxencrypt`` blob (to the owner's Maxima key) and as its SHA-256. The
    mailbox row is locked first, so two rotations at once make one token each, in turn (and the database allows
    one live token per mailbox whatever happens).
    """
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        mailbox = Mailbox.objects.select_for_update(no_key=True).select_related("record").get(id=mailbox.id)
        now = timezone.now()
        AccessToken.objects.filter(mailbox=mailbox, revoked_at=None).update(revoked_at=now, revoked_by=revoked_by)
        token = AccessToken(mailbox=mailbox, name=mailbox.record.name, owner_key=mailbox.owner_key)
        token.blob = maxencrypt(
            from_hex(mailbox.owner_key), access_token_plaintext(token_id=token.token_id, secret=secret)
        )
        token.secret_hash = secret_hash(secret)
        token.save()
        outbound_enqueue(
            destination=mailbox.address or mailbox.owner_key,
            application=APPLICATION,
            payload=AccessTokenMessage(name=token.name, token_id=token.token_id, blob=bytes(token.blob)).to_bytes(),
            idempotency_key=f"access-token:{token.token_id}",
        )
    return token


def access_token_revoke(*, mailbox: Mailbox, by: str) -> int:
    """Revoke the mailbox's live token (``by``: 'owner' or a staff username); revoking again changes nothing."""
    return AccessToken.objects.filter(mailbox=mailbox, revoked_at=None).update(revoked_at=timezone.now(), revoked_by=by)


def access_token_authenticate(*, credentials: str) -> AccessToken:
    """The live token of ``<token_id>:<secret>``, or a refusal: 401 ``token_invalid``/``token_revoked``, 403
    ``name_suspended``. A token dies with its name's ownership (released, or another owner since)."""
    token_id, secret = access_token_credentials(credentials)
    token = AccessToken.objects.select_related("mailbox__record").filter(token_id=token_id).first()
    return access_token_live(token=token, secret=secret)


def access_token_credentials(credentials: str) -> tuple[str, str]:
    """The token id and secret of ``<token_id>:<secret>``, or 401 ``token_invalid`` for anything that cannot be."""
    token_id, _, secret = credentials.partition(":")
    if not TOKEN_ID_RE.fullmatch(token_id) or not secret.isascii() or not 0 < len(secret) <= MAX_SECRET_CHARS:
        raise _token_invalid()
    return token_id, secret


def access_token_live(*, token: AccessToken | None, secret: str) -> AccessToken:
    """``token`` (read by its id, with its mailbox and record) if ``secret`` is its secret and it is live; the
    refusals of ``access_token_authenticate`` otherwise. For a read that loads the token in a statement of its own
    making (``views.message_early``): every check of the token is made here, whoever read the row."""
    if token is None or not hmac.compare_digest(token.secret_hash, secret_hash(secret)):
        raise _token_invalid()
    if token.revoked_at is not None:
        raise DomainError("token_revoked", "This access token was revoked or replaced.", status=401)
    record = token.mailbox.record
    if record.status == NameStatus.SUSPENDED:
        raise DomainError(
            "name_suspended", f"The name {record.name!r} is suspended by this gateway's staff.", status=403
        )
    if record.status != NameStatus.ACTIVE or canonical_public_key(record.owner_key) != token.owner_key:
        raise DomainError("token_invalid", "The name of this token changed hands or was released.", status=401)
    return token


def access_token_check_scope(*, token: AccessToken, name: str) -> None:
    """An access token is good for everything on its own mailbox, and nothing on any other."""
    if token.mailbox.record.name != name:
        raise DomainError(
            "token_out_of_scope", f"This access token is for {token.mailbox.record.name!r}, not {name!r}.", status=403
        )


def _token_invalid() -> DomainError:
    return DomainError("token_invalid", "Unknown access token.", status=401)
