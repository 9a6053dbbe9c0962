"""MNS name rules: normalisation, reserved names and confusable skeletons.

Both the gateway and the client import this module, so a name the client accepts is a name the gateway accepts.

The rules (Registry issue, made exact here):

- **Normalisation** = NFKC, then Unicode case-folding. The result must match ``GRAMMAR``: ASCII ``a-z`` and
  ``0-9``, with single ``-`` or ``_`` separators inside (not first, not last, never two in a row, ``-_`` included).
  ``Alice``, ``ALICE``, ``ALICE`` in full-width letters and ``alice`` are one name. Anything that is not ASCII
  after normalisation (the Cyrillic a U+0430, the Turkish ``İ``, which folds to ``i`` + a combining dot, emoji,
  spaces) is refused: names never look like something else because of a character outside the table below.
- **Length**: at most ``MAX_LENGTH`` (32) characters after normalisation. Names of 1 or 2 characters are
  well-formed but *reserved* (``check_reserved`` refuses them with ``name_reserved``), so ``normalise`` never says
  "too short": the issue lists 1-2 character names among the reserved ones, and a reserved name is one that
  exists in the grammar but cannot be registered by the public. Looking up ``al`` is therefore legal (and finds
  nothing unless staff assigned it).
- **Reserved**: ``BUILTIN_RESERVED`` plus whatever staff add, compared by skeleton, so ``adm1n`` and ``supp0rt`` are
  reserved too.
- **Look-alikes**: ``skeleton`` folds a normalised name to its confusable skeleton; the registry refuses a name
  whose skeleton equals that of a name owned by another key (``NameRefused.confusable``).

Every refusal is a ``NameRefused`` with its own ``code`` and a human ``message``:

========================  ===================================================================
``name_invalid``          not text, a character outside the grammar, or a misplaced separator
``name_empty``            the empty string
``name_too_long``         more than 32 characters after normalisation (or a huge raw input)
``name_reserved``         built-in or staff-reserved, looks like one, or 1-2 characters long
``name_taken``            owned by another key (raised by the registry through ``NameRefused.taken``)
``name_confusable``       looks like a name owned by another key (``NameRefused.confusable``)
========================  ===================================================================
"""

import re
import unicodedata
from collections.abc import Collection

from mns_client.protocol.errors import Refusal

MAX_LENGTH = 32
# Names shorter than this are reserved (see the module docstring), not malformed.
MIN_PUBLIC_LENGTH = 3
# Inputs longer than this are refused before NFKC runs, so a megabyte of text costs one len() call. NFKC and
# case-folding never turn one code point into nothing, and ASCII letters are never the result of a composition, so
# an input whose normal form is a valid name has at most MAX_LENGTH code points; four times that leaves room for
# anything surprising while NFKC's worst expansion (x18) stays a few kilobytes.
MAX_RAW_LENGTH = 4 * MAX_LENGTH

GRAMMAR = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_SEPARATORS = frozenset("-_")

# The confusable table, applied by ``skeleton`` in this order. Names are ASCII after normalisation, so the table
# covers what ASCII can fake in common fonts, not Unicode's confusables.txt.
#
# 1. Separators are dropped: ``al-ice``, ``al_ice`` and ``alice`` read as one name.
# 2. Single characters fold to one representative:
#    ``0``→``o``                    round
#    ``1``, ``i``→``l``             the vertical stroke family (the rule; ``l`` is the representative)
#    ``2``→``z``, ``5``→``s``       the same shape with straight or round corners
#    ``6``→``b``                    a lower-case ``b`` is a ``6`` with a straight stem
#    ``9``, ``q``→``g``             a bowl with a descender
#    ``3 4 7 8`` are left alone: they read as digits, and folding them (leetspeak) refuses too many honest names.
# 3. Pairs that render as one letter, folded left to right after step 2, so ``c1`` and ``ci`` become ``d`` too:
#    ``rn``→``m``, ``vv``→``w``, ``cl``→``d``.
#
# Why this is a fixed point, ``skeleton(skeleton(x)) == skeleton(x)``: after step 1 no separator is left, after
# step 2 no character of its domain (``0 1 i 2 5 6 9 q``) is left, and step 3 writes only ``m``, ``w`` and ``d``,
# which neither step 2 nor any pair of step 3 reads; a run of ``v``s leaves at most one ``v`` after ``vv``→``w``, and
# the three pairs share no letter, so one pass removes every pair and creates none.
_SINGLE_FOLDS = str.maketrans({"0": "o", "1": "l", "i": "l", "2": "z", "5": "s", "6": "b", "9": "g", "q": "g"})
_SEPARATOR_DROP = str.maketrans("", "", "-_")
_PAIR_FOLDS = (("rn", "m"), ("vv", "w"), ("cl", "d"))

BUILTIN_RESERVED: frozenset[str] = frozenset(
    {
        # the network, the software and its operators
        "mns",
        "minima",
        "maxima",
        "minidapp",
        "dapp",
        "gateway",
        "registry",
        "mailbox",
        "node",
        "wallet",
        "official",
        "staff",
        "team",
        "owner",
        "operator",
        "moderator",
        "mod",
        # administration
        "admin",
        "administrator",
        "root",
        "superuser",
        "sysadmin",
        "system",
        "sys",
        "daemon",
        "service",
        "server",
        "host",
        "localhost",
        # RFC 2142 and mail conventions
        "postmaster",
        "hostmaster",
        "webmaster",
        "abuse",
        "security",
        "noc",
        "support",
        "info",
        "help",
        "helpdesk",
        "contact",
        "mail",
        "email",
        "noreply",
        "no-reply",
        "no_reply",
        "donotreply",
        "do-not-reply",
        "mailer-daemon",
        "billing",
        "sales",
        "marketing",
        "legal",
        "privacy",
        "compliance",
        "report",
        "status",
        # technical words that end up in URLs, logs and code
        "www",
        "ftp",
        "smtp",
        "imap",
        "pop",
        "dns",
        "api",
        "rpc",
        "app",
        "web",
        "static",
        "media",
        "assets",
        "cdn",
        "login",
        "logout",
        "signin",
        "signup",
        "register",
        "account",
        "accounts",
        "settings",
        "config",
        "dashboard",
        "test",
        "example",
        "null",
        "none",
        "undefined",
        "true",
        "false",
        "everyone",
        "anonymous",
        "unknown",
        "self",
    }
)


class NameRefused(Refusal):
    """A name was refused; ``code`` says which rule, ``message`` says it to a human."""

    code = "name_invalid"

    @classmethod
    def taken(cls, name: str) -> "NameRefused":
        return cls("name_taken", f"the name {name!r} is already registered to another key")

    @classmethod
    def confusable(cls, name: str, existing: str) -> "NameRefused":
        return cls(
            "name_confusable",
            f"the name {name!r} looks too much like {existing!r}, which is registered to another key",
        )


def _describe(char: str) -> str:
    return f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed character')})"


def normalise(raw: str) -> str:
    """Return the normal form of ``raw`` (NFKC, then case-fold) or raise ``NameRefused``.

    The result always matches ``GRAMMAR`` and has 1 to ``MAX_LENGTH`` characters; ``normalise`` of a result is the
    result itself. Reservation (including 1-2 character names) is ``check_reserved``'s job.
    """
    if not isinstance(raw, str):
        raise NameRefused("name_invalid", "a name must be text")
    if not raw:
        raise NameRefused("name_empty", "the name is empty")
    if len(raw) > MAX_RAW_LENGTH:
        raise NameRefused("name_too_long", f"a name has at most {MAX_LENGTH} characters")
    name = unicodedata.normalize("NFKC", raw).casefold()
    for char in name:
        if char not in _ALPHABET:
            raise NameRefused(
                "name_invalid",
                f"the name contains {_describe(char)}: use only a-z, 0-9 and single - or _ inside",
            )
    if len(name) > MAX_LENGTH:
        raise NameRefused("name_too_long", f"a name has at most {MAX_LENGTH} characters, this one has {len(name)}")
    if name[0] in _SEPARATORS or name[-1] in _SEPARATORS:
        raise NameRefused("name_invalid", "a name must start and end with a letter or a digit")
    if GRAMMAR.fullmatch(name) is None:
        raise NameRefused("name_invalid", "a name cannot have two separators (- or _) in a row")
    return name


def skeleton(normalised: str) -> str:
    """Fold a normalised name to its confusable skeleton (the table above); ``skeleton`` is a fixed point.

    Two names with the same skeleton look alike. Raises ``ValueError`` for characters outside ``a-z0-9-_``: a
    skeleton of an unnormalised string would silently compare unequal to its own normal form's.
    """
    if not _ALPHABET.issuperset(normalised):
        raise ValueError("skeleton() takes a normalised name")
    folded = normalised.translate(_SEPARATOR_DROP).translate(_SINGLE_FOLDS)
    for pair, letter in _PAIR_FOLDS:
        folded = folded.replace(pair, letter)
    return folded


# skeleton -> the first reserved name (in sorted order) with that skeleton, for a stable message.
_BUILTIN_SKELETONS: dict[str, str] = {}
for _reserved in sorted(BUILTIN_RESERVED):
    _BUILTIN_SKELETONS.setdefault(skeleton(_reserved), _reserved)


def check_reserved(normalised: str, extra_reserved: Collection[str] = ()) -> None:
    """Raise ``NameRefused("name_reserved")`` if the name is reserved, looks like a reserved name, or is short.

    ``extra_reserved`` is the staff's list, already normalised (a ``ValueError`` tells a caller that forgot).
    """
    if len(normalised) < MIN_PUBLIC_LENGTH:
        raise NameRefused("name_reserved", f"names shorter than {MIN_PUBLIC_LENGTH} characters are reserved")
    if normalised in BUILTIN_RESERVED or normalised in extra_reserved:
        raise NameRefused("name_reserved", f"the name {normalised!r} is reserved")
    shape = skeleton(normalised)
    lookalike = _BUILTIN_SKELETONS.get(shape)
    if lookalike is None:
        lookalike = next((extra for extra in sorted(extra_reserved) if skeleton(extra) == shape), None)
    if lookalike is not None:
        raise NameRefused("name_reserved", f"the name {normalised!r} looks like the reserved name {lookalike!r}")


def check_registrable(raw: str, extra_reserved: Collection[str] = ()) -> str:
    """``normalise`` then ``check_reserved``: the checks that need no registry; returns the normal form."""
    name = normalise(raw)
    check_reserved(name, extra_reserved)
    return name
