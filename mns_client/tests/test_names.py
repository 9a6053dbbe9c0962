"""MNS name rules: normalisation, the refusal codes, reserved names and confusable skeletons."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mns_client.protocol import names
from mns_client.protocol.errors import MNSError
from mns_client.protocol.names import (
    BUILTIN_RESERVED,
    GRAMMAR,
    MAX_LENGTH,
    NameRefused,
    check_registrable,
    check_reserved,
    normalise,
    skeleton,
)

# Names that match the grammar: 1-32 characters, single separators inside.
_ALNUM = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
grammatical_names = st.builds(
    lambda first, rest: first + "".join(sep + part for sep, part in rest),
    _ALNUM,
    st.lists(st.tuples(st.sampled_from("-_"), _ALNUM), max_size=4),
).filter(lambda name: len(name) <= MAX_LENGTH)


def refusal(raw: object) -> tuple[str, str]:
    with pytest.raises(NameRefused) as caught:
        normalise(raw)  # type: ignore[arg-type]
    return caught.value.code, caught.value.message


# ---------------------------------------------------------------------------------------------- normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("Alice", "alice"),
        ("ALICE", "alice"),
        ("ＡＬＩＣＥ", "alice"),  # full width  # noqa: RUF001
        ("ﬁle", "file"),  # the fi ligature
        ("straße", "strasse"),  # case-folding, not lower()
        ("\u212aelvin", "kelvin"),  # KELVIN SIGN
        ("x²", "x2"),
        ("bob-smith_42", "bob-smith_42"),
        ("ａ－ｂ＿ｃ", "a-b_c"),  # full-width separators  # noqa: RUF001
        ("a" * 32, "a" * 32),
    ],
)
def test_it_normalises_width_case_and_compatibility_forms(raw: str, expected: str) -> None:
    # given a name typed in some form; when it is normalised; then the result is the one ASCII name
    assert normalise(raw) == expected


def test_it_treats_alice_in_any_case_as_one_name() -> None:
    assert {normalise("Alice"), normalise("ALICE"), normalise("alice")} == {"alice"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("İstanbul", "the name contains U+0307 (COMBINING DOT ABOVE): use only a-z, 0-9 and single - or _ inside"),
        (
            "\u0131stanbul",  # dotless i
            "the name contains U+0131 (LATIN SMALL LETTER DOTLESS I): use only a-z, 0-9 and single - or _ inside",
        ),
        (
            "\u0430lice",
            "the name contains U+0430 (CYRILLIC SMALL LETTER A): use only a-z, 0-9 and single - or _ inside",
        ),
        ("alice\U0001f600", "the name contains U+1F600 (GRINNING FACE): use only a-z, 0-9 and single - or _ inside"),
        ("alice smith", "the name contains U+0020 (SPACE): use only a-z, 0-9 and single - or _ inside"),
        (" alice", "the name contains U+0020 (SPACE): use only a-z, 0-9 and single - or _ inside"),
        ("alice.smith", "the name contains U+002E (FULL STOP): use only a-z, 0-9 and single - or _ inside"),
        (
            "café",
            "the name contains U+00E9 (LATIN SMALL LETTER E WITH ACUTE): use only a-z, 0-9 and single - or _ inside",
        ),
        ("ali\u200bce", "the name contains U+200B (ZERO WIDTH SPACE): use only a-z, 0-9 and single - or _ inside"),
        ("a\x00b", "the name contains U+0000 (unnamed character): use only a-z, 0-9 and single - or _ inside"),
    ],
)
def test_it_refuses_characters_that_are_not_ascii_letters_digits_or_separators(raw: str, message: str) -> None:
    assert refusal(raw) == ("name_invalid", message)


@pytest.mark.parametrize("raw", ["-ab", "_ab", "ab-", "ab_", "-", "_"])
def test_it_refuses_a_separator_at_either_end(raw: str) -> None:
    assert refusal(raw) == ("name_invalid", "a name must start and end with a letter or a digit")


@pytest.mark.parametrize("raw", ["a--b", "a__b", "a-_b", "a_-b", "al--ice"])
def test_it_refuses_a_doubled_separator(raw: str) -> None:
    assert refusal(raw) == ("name_invalid", "a name cannot have two separators (- or _) in a row")


def test_it_refuses_the_empty_string() -> None:
    assert refusal("") == ("name_empty", "the name is empty")


@pytest.mark.parametrize("raw", [None, 42, b"alice", ["alice"]])
def test_it_refuses_a_value_that_is_not_text(raw: object) -> None:
    assert refusal(raw) == ("name_invalid", "a name must be text")


def test_it_refuses_33_characters() -> None:
    assert refusal("a" * 33) == ("name_too_long", "a name has at most 32 characters, this one has 33")


def test_it_counts_the_length_after_normalisation() -> None:
    # given 17 ligatures, each of which NFKC turns into two letters
    assert refusal("ﬁ" * 17) == ("name_too_long", "a name has at most 32 characters, this one has 34")


def test_it_refuses_a_huge_input_before_normalising_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # given 100 000 characters that NFKC would expand 18 times (U+FDFA), and an NFKC that must not run
    class NoNFKC:
        def normalize(self, form: str, text: str) -> str:
            raise AssertionError("NFKC ran on a huge input")

    monkeypatch.setattr(names, "unicodedata", NoNFKC())
    # when it is normalised; then it is refused by its length alone
    assert refusal("\ufdfa" * 100_000) == ("name_too_long", "a name has at most 32 characters")


def test_it_refuses_100_000_ascii_letters() -> None:
    assert refusal("a" * 100_000) == ("name_too_long", "a name has at most 32 characters")


@pytest.mark.parametrize(("raw", "expected"), [("a", "a"), ("AB", "ab"), ("7", "7")])
def test_it_accepts_one_and_two_character_names_as_wellformed(raw: str, expected: str) -> None:
    # reservation of short names is check_reserved's job, so a lookup of "ab" is legal
    assert normalise(raw) == expected


def test_a_refusal_is_an_mns_error_with_its_own_code() -> None:
    error = NameRefused("name_reserved", "the name 'admin' is reserved")
    assert isinstance(error, MNSError)
    assert (error.code, error.message, str(error)) == (
        "name_reserved",
        "the name 'admin' is reserved",
        "the name 'admin' is reserved",
    )


def test_it_words_taken_and_confusable_refusals() -> None:
    taken = NameRefused.taken("alice")
    confusable = NameRefused.confusable("a1ice", "alice")
    assert (taken.code, taken.message) == ("name_taken", "the name 'alice' is already registered to another key")
    assert (confusable.code, confusable.message) == (
        "name_confusable",
        "the name 'a1ice' looks too much like 'alice', which is registered to another key",
    )


# ----------------------------------------------------------------------------------------------- reserved


@pytest.mark.parametrize("name", ["a", "ab", "7", "x9"])
def test_it_reserves_one_and_two_character_names(name: str) -> None:
    with pytest.raises(NameRefused) as caught:
        check_reserved(name)
    assert (caught.value.code, caught.value.message) == (
        "name_reserved",
        "names shorter than 3 characters are reserved",
    )


def test_a_two_letter_input_is_reserved_rather_than_too_short() -> None:
    with pytest.raises(NameRefused) as caught:
        check_registrable("AB")
    assert caught.value.code == "name_reserved"


@pytest.mark.parametrize(
    "name",
    ["admin", "administrator", "root", "mns", "minima", "maxima", "postmaster", "hostmaster", "webmaster", "abuse",
     "support", "security", "www", "mail", "noreply", "no-reply", "info", "help", "api", "system", "gateway",
     "null", "undefined"],
)  # fmt: skip
def test_it_reserves_the_builtin_names(name: str) -> None:
    assert name in BUILTIN_RESERVED
    with pytest.raises(NameRefused) as caught:
        check_reserved(name)
    assert (caught.value.code, caught.value.message) == ("name_reserved", f"the name {name!r} is reserved")


@pytest.mark.parametrize(
    ("name", "reserved"),
    [("adm1n", "admin"), ("supp0rt", "support"), ("ma1l", "mail"), ("no_rep1y", "no-reply"),
     ("n0-reply", "no-reply"), ("r00t", "root"), ("5ecurity", "security")],
)  # fmt: skip
def test_it_reserves_names_that_look_like_reserved_ones(name: str, reserved: str) -> None:
    with pytest.raises(NameRefused) as caught:
        check_reserved(name)
    assert (caught.value.code, caught.value.message) == (
        "name_reserved",
        f"the name {name!r} looks like the reserved name {reserved!r}",
    )


def test_every_builtin_reserved_name_is_normalised() -> None:
    assert all(normalise(name) == name for name in BUILTIN_RESERVED)


def test_it_reserves_what_staff_reserved_and_its_lookalikes() -> None:
    # given staff reserved "acme"
    extra = {"acme", "globex"}
    # when "acme" or "acrne" is checked; then both are reserved
    for name, message in [
        ("acme", "the name 'acme' is reserved"),
        ("acrne", "the name 'acrne' looks like the reserved name 'acme'"),
    ]:
        with pytest.raises(NameRefused) as caught:
            check_reserved(name, extra)
        assert (caught.value.code, caught.value.message) == ("name_reserved", message)


def test_it_lets_an_ordinary_name_through() -> None:
    check_reserved("alice", {"acme"})
    assert check_registrable("Alice") == "alice"


def test_it_tells_a_caller_that_passed_an_unnormalised_staff_list() -> None:
    with pytest.raises(ValueError, match="normalised name"):
        check_reserved("alice", {"Acme Corp"})


# ----------------------------------------------------------------------------------------------- skeleton


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice", "allce"),
        ("a1ice", "allce"),
        ("al1ce", "allce"),
        ("g00gle", "google"),
        ("paypa1", "paypal"),
        ("rnoney", "money"),
        ("money", "money"),
        ("vvallet", "wallet"),
        ("c1ock", "dock"),
        ("ciock", "dock"),
        ("clock", "dock"),
        ("al-ice", "allce"),
        ("al_ice", "allce"),
        ("5ecret", "secret"),
        ("2ebra", "zebra"),
        ("6ob", "bob"),
        ("9uest", "guest"),
        ("quest", "guest"),
        ("vvv", "wv"),
        ("rnrn", "mm"),
        ("user8", "user8"),  # 3 4 7 8 are left alone
        ("347", "347"),
    ],
)
def test_it_folds_lookalikes_to_one_skeleton(name: str, expected: str) -> None:
    assert skeleton(name) == expected


def test_it_refuses_to_skeleton_an_unnormalised_string() -> None:
    with pytest.raises(ValueError, match="normalised name"):
        skeleton("Alice")


# ---------------------------------------------------------------------------------------------- properties


@given(st.text(max_size=40))
def test_normalise_is_idempotent_on_what_it_accepts(raw: str) -> None:
    try:
        name = normalise(raw)
    except NameRefused:
        return
    assert normalise(name) == name


@given(st.text(max_size=40))
def test_every_accepted_name_matches_the_grammar(raw: str) -> None:
    try:
        name = normalise(raw)
    except NameRefused:
        return
    assert GRAMMAR.fullmatch(name) is not None
    assert name.isascii()
    assert 1 <= len(name) <= MAX_LENGTH


@given(grammatical_names)
def test_every_grammatical_name_is_accepted_unchanged(name: str) -> None:
    assert normalise(name) == name


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", max_size=40))
def test_skeleton_is_a_fixed_point(name: str) -> None:
    assert skeleton(skeleton(name)) == skeleton(name)


@given(grammatical_names, st.data())
def test_names_differing_only_by_case_or_width_share_a_normal_form(name: str, data: st.DataObject) -> None:
    # given a name with each character independently upper-cased and/or written full width
    variant = ""
    for char in name:
        if data.draw(st.booleans()):
            char = char.upper()
        if data.draw(st.booleans()):
            char = chr(ord(char) + 0xFEE0)  # the full-width form of printable ASCII
        variant += char
    # when both are normalised; then they are one name
    assert normalise(variant) == name
