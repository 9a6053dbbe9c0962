"""The one strict field check the wire formats share: what it refuses, and that it raises the caller's error."""

import pytest

from mns_client.protocol import fields


class Refused(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def test_it_raises_the_error_the_caller_chose_with_the_field_named() -> None:
    with pytest.raises(Refused) as caught:
        fields.integer(True, "seq", invalid=Refused)

    assert (caught.value.field, str(caught.value)) == ("seq", "seq: must be an integer")


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, -1, 2**53])
def test_an_integer_is_a_json_integer_in_range_and_nothing_else(value: object) -> None:
    with pytest.raises(Refused):
        fields.integer(value, "n", invalid=Refused)


def test_an_integer_in_range_is_returned_as_it_is() -> None:
    assert (fields.integer(0, "n", invalid=Refused), fields.integer(2**53 - 1, "n", invalid=Refused)) == (0, 2**53 - 1)


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_a_flag_is_true_or_false_only(value: object) -> None:
    with pytest.raises(Refused):
        fields.boolean(value, "flag", invalid=Refused)


def test_null_is_refused_for_an_optional_key_unless_the_format_names_it_nullable() -> None:
    with pytest.raises(Refused) as caught:
        fields.check_keys({"a": 1, "b": None}, required={"a"}, optional={"b"}, invalid=Refused)

    assert str(caught.value) == "b: must be omitted rather than null"
    assert fields.check_keys({"a": 1, "b": None}, required={"a"}, optional={"b"}, nullable={"b"}, invalid=Refused)
    assert fields.check_keys({"a": 1}, required={"a"}, optional={"b"}, invalid=Refused) == {"a": 1}


def test_unknown_keys_are_refused_unless_a_wrapper_may_carry_more() -> None:
    with pytest.raises(Refused, match="c: is an unknown field"):
        fields.check_keys({"a": 1, "c": 2}, required={"a"}, invalid=Refused)

    assert fields.check_keys({"a": 1, "c": None}, required={"a"}, invalid=Refused, others=True) == {"a": 1, "c": None}


def test_missing_keys_are_named_in_the_order_the_format_lists_them() -> None:
    with pytest.raises(Refused, match=r"^z: is missing$"):
        fields.check_keys({}, required=("z", "a"), invalid=Refused)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"v": True, "type": "x"}, "v"), ({"v": 1.0, "type": "x"}, "v"), ({"v": 1, "type": "y"}, "type"), ([], "message")],
)
def test_the_header_is_read_before_the_other_fields(body: object, field: str) -> None:
    with pytest.raises(Refused) as caught:
        fields.check_header(body, "x", required={"a"}, invalid=Refused)

    assert caught.value.field == field


def test_loads_refuses_a_key_written_twice_and_text_that_is_not_json() -> None:
    with pytest.raises(Refused, match=r"^v: is written twice$"):
        fields.loads(b'{"v":1,"a":{"b":1},"v":1}', invalid=Refused)
    with pytest.raises(Refused, match=r"^b: is written twice$"):
        fields.loads(b'{"a":{"b":1,"b":2}}', invalid=Refused)
    with pytest.raises(Refused, match=r"^message: is not UTF-8 JSON$"):
        fields.loads(b"\xff", invalid=Refused)

    assert fields.loads(b'{"a":[{"b":1},{"b":2}]}', invalid=Refused) == {"a": [{"b": 1}, {"b": 2}]}
