"""The node's command line: splitting, parameter parsing and the reply envelope (CommandRunner.java).

A request body is split on ``;`` (empty pieces are skipped, as ``StringTokenizer`` does), each piece is parsed into
a command name and ``name:value`` parameters, checked against the command's valid parameter names, and run. The
reply is one envelope, or a JSON array when there is more than one; execution stops at the first ``status:false``.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simnet import javajson
from simnet.util import java_trim

logger = logging.getLogger(__name__)

Reply = dict[str, Any]
Handler = Callable[[Any, "Params", Reply], None]

_FAST_TOKEN = re.compile(r'"([^"]*)"|([^ \t\n\x0b\f\r]+)')


class CommandError(Exception):
    """A failed command: the envelope gets ``status:false`` and this text as ``error``."""


@dataclass(frozen=True)
class CommandSpec:
    name: str
    valid_params: tuple[str, ...]
    handler: Handler


@dataclass
class ParsedCommand:
    text: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Params:
    """Typed access to a command's parameters with the node's error texts."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def has(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> str:
        if name not in self.values:
            raise CommandError(f"param not specified : {name}")
        value = self.values[name]
        if not isinstance(value, str):
            return javajson.dumps(value)
        if java_trim(value) == "":
            raise CommandError(f"BLANK param not allowed : {name}")
        return java_trim(value)

    def opt(self, name: str, default: str) -> str:
        return self.get(name) if name in self.values else default

    def raw(self, name: str) -> Any:
        if name not in self.values:
            raise CommandError(f"param not specified : {name}")
        return self.values[name]

    def is_object(self, name: str) -> bool:
        return isinstance(self.values.get(name), dict)

    def boolean(self, name: str, default: bool = False) -> bool:
        return self.get(name) == "true" if name in self.values else default

    def integer(self, name: str, default: int | None = None) -> int:
        if name not in self.values and default is not None:
            return default
        text = self.get(name)
        try:
            return int(text)
        except ValueError:
            raise CommandError(f'java.lang.NumberFormatException: For input string: "{text}"') from None


# --------------------------------------------------------------------------------------------------- splitting


def split_multi(text: str) -> list[str]:
    """Split a request on ``;`` like ``StringTokenizer``: empty pieces vanish, each piece is trimmed."""
    return [java_trim(piece) for piece in text.split(";") if piece != ""]


def _fast_split(command: str) -> list[str] | None:
    """``splitterQuotedPattern``: quoted groups lose their quotes; ``name : value`` pairs are re-joined.

    Returns None when the input has a shape the fast path cannot handle (a value with ``:`` in it), so the
    slow path is used, exactly as the node does.
    """
    spaced = java_trim(command).replace(":", " : ")
    tokens = [m.group(1) if m.group(1) is not None else m.group(2) for m in _FAST_TOKEN.finditer(spaced)]
    if not tokens:
        return []
    final, pair, name_found = [tokens[0]], "", False
    for tok in tokens[1:]:
        if not name_found:
            if java_trim(tok) == ":":
                return None
            name_found, pair = True, tok
        elif java_trim(tok) == ":":
            pair += ":"
        else:
            name_found = False
            final.append(pair + tok)
    return final


def _slow_split(command: str) -> list[str]:
    """``splitStringJSON`` normal method: spaces split unless quoted or inside ``{}``/``[]``."""
    tokens: list[str] = []
    current, depth, quoted = "", 0, False
    for ch in java_trim(command):
        if ch == " " and not quoted and depth == 0:
            if current:
                tokens.append(java_trim(current))
            current = ""
        elif ch in "{[":
            depth += 1
            current += ch
        elif ch in "}]":
            depth -= 1
            current += ch
        elif ch == '"' and depth <= 0:
            quoted = not quoted
        else:
            current += ch
    if current:
        tokens.append(java_trim(current))
    return tokens


def split_tokens(command: str) -> list[str]:
    if ":\\" not in command and "{" not in command and "[" not in command:
        fast = _fast_split(command)
        if fast is not None:
            return fast
    return _slow_split(command)


# --------------------------------------------------------------------------------------------------- parsing


def _json_value(command: str, token: str, value: str) -> Any:
    try:
        return javajson.loads(value)
    except ValueError as exc:
        raise CommandError(f"Invalid JSON parameter for {command} @ {token} {_parse_error(value, exc)}") from None


def _parse_error(value: str, exc: ValueError) -> str:
    """The node's json-simple ``ParseException`` text for the position Python's parser stopped at (fixture 155)."""
    position = getattr(exc, "pos", None)
    prefix = "org.minima.utils.json.parser.ParseException: "
    if position is None:
        return prefix + str(exc)
    if position >= len(value):
        return prefix + f"Unexpected token END OF FILE at position {position}."
    return prefix + f"Unexpected character ({value[position]}) at position {position}."


def _parse_value(command: str, token: str, value: str) -> Any:
    if value.startswith("{") and value.endswith("}"):
        parsed = _json_value(command, token, value)
        if not isinstance(parsed, dict):
            raise CommandError(f"Invalid JSON parameter for {command} @ {token}")
        return parsed
    if value.startswith("[") and value.endswith("]") and command != "txnstate":
        return _json_value(command, token, value)
    if value.startswith('"'):
        value = value[1:]
    if value.endswith('"'):
        value = value[:-1]
    return value


def parse_command(text: str, known: dict[str, CommandSpec]) -> ParsedCommand:
    tokens = split_tokens(text)
    if not tokens:
        raise IndexError("empty command")
    name = tokens[0].lower()
    if name not in known:
        # The fixtures show the raw first word here (fixture 25: `b"}`), not the tokenizer's version of it.
        return ParsedCommand(text, text.split(" ")[0].lower(), error="Command not found")
    parsed = ParsedCommand(text, name)
    for token in tokens[1:]:
        index = token.find(":")
        if index == -1:
            parsed.error = f"Invalid parameters for {name} @ {token}"
            return parsed
        key, value = java_trim(token[:index]), java_trim(token[index + 1 :])
        try:
            parsed.params[key] = _parse_value(name, token, value)
        except CommandError as exc:
            parsed.error = str(exc)
            return parsed
    return parsed


# --------------------------------------------------------------------------------------------------- running


def base_reply(name: str, params: dict[str, Any]) -> Reply:
    """``Command.getJSONReply()``: command, params (only if any), status, pending."""
    reply: Reply = {"command": name}
    if params:
        reply["params"] = params
    reply["status"] = True
    reply["pending"] = False
    return reply


def _failure(name: str, params: dict[str, Any], error: str) -> Reply:
    reply = base_reply(name, params)
    reply["status"] = False
    reply["error"] = error
    return reply


Gate = Callable[[ParsedCommand], "Reply | None"]


def run_one(node: Any, parsed: ParsedCommand, known: dict[str, CommandSpec], gate: Gate | None = None) -> Reply:
    """Run one parsed command. ``gate`` (MDS: a READ-mode MiniDapp's write command) may answer instead, after the
    parameters are checked and before the command runs, as CommandRunner does."""
    if parsed.error is not None:
        return {"command": parsed.name, "status": False, "pending": False, "error": parsed.error}
    spec = known[parsed.name]
    for key in parsed.params:
        if key not in spec.valid_params:
            return {
                "command": parsed.text,
                "params": parsed.params,
                "status": False,
                "pending": False,
                "error": f"Invalid parameter : {key}",
            }
    gated = gate(parsed) if gate is not None else None
    if gated is not None:
        return gated
    reply = base_reply(parsed.name, parsed.params)
    try:
        spec.handler(node, Params(parsed.params), reply)
    except CommandError as exc:
        return _failure(parsed.name, parsed.params, str(exc))
    except Exception as exc:
        logger.exception("simnet command %s failed", parsed.name)
        return _failure(parsed.name, parsed.params, f"java.lang.RuntimeException: {exc}")
    return reply


def run_multi(node: Any, text: str, known: dict[str, CommandSpec], gate: Gate | None = None) -> str:
    """Run a request body and return the reply text (without the trailing newline the HTTP layer adds)."""
    results: list[Reply] = []
    try:
        for piece in split_multi(text):
            result = run_one(node, parse_command(piece, known), known, gate)
            results.append(result)
            if result.get("status") is False:
                break
    except IndexError:
        # A blank piece makes the node's CMDHandler fail before any reply is built.
        return '{"status":false}'
    return javajson.dumps(results[0] if len(results) == 1 else results)
