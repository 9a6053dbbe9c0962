"""The narrated walk-through: alice registers ``alice``, bob looks her up and sends two messages, alice reads one
(option 1) and has the rest forwarded to her node (option 2), and bob pays her. Every step runs the real ``mns``
command line (``python -m mns_client``) as that person, with their own client folder and their own Minima node,
and prints what the gateway stored: ciphertext sizes and schemes, never a plaintext.

    python -m mns_client.demo --gateway URL --alice-node RPC --bob-node RPC [--alice-home DIR] [--bob-home DIR]
    python -m mns_client.demo --from var/demo.json          # what `make run` wrote: replay against it

It can be run again and again against the same gateway: a name that alice's node already holds is not
registered twice (and if her client folder is new, she publishes its box key with ``rotate-key``).
Exit status: 0 when every step did what it should, else the exit code of the step that failed.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .config import Home
from .protocol.codecs import to_hex

NAME = "alice"
FIRST = "Hi Alice,\nare we still on for lunch on Friday? The usual place, 12:30.\n-- Bob\n"
SECOND = "Notes from Tuesday's meeting:\n1. ship the gateway\n2. register more names\n"


class StepFailed(Exception):
    def __init__(self, step: str, code: int) -> None:
        super().__init__(step)
        self.step, self.code = step, code


@dataclass
class Person:
    who: str
    node: str
    home: Path
    password: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, gateway: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MNS_")}
        env.update(MNS_HOME=str(self.home), MNS_NODE=self.node, MNS_GATEWAY=gateway, PYTHONUNBUFFERED="1")
        if self.password:
            env["MNS_NODE_PASSWORD"] = self.password
        return env


class Demo:
    def __init__(self, gateway: str, alice: Person, bob: Person, *, out: TextIO, pause: float = 0.0) -> None:
        self.gateway, self.alice, self.bob, self.out, self.pause = gateway.rstrip("/"), alice, bob, out, pause
        self.number = 0

    # -- output

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, title: str) -> None:
        if self.number and self.pause:
            time.sleep(self.pause)
        self.number += 1
        self.say(f"\n── {self.number}. {title} " + "─" * max(0, 100 - len(title)))

    def mns(
        self, person: Person, *args: str, stdin: str | None = None, show: bool = True, expect: tuple[int, ...] = (0,)
    ) -> tuple[int, str]:
        """Run ``mns ARGS`` as ``person``; print the command and (when ``show``) its output, indented."""
        shown = "mns " + " ".join(shlex.quote(a) for a in args if a != "--json")
        if show:
            self.say(f"  {person.who}$ {shown}" + (" <<'EOF'" if stdin is not None else ""))
            if stdin is not None:
                for line in [*stdin.rstrip("\n").splitlines(), "EOF"]:
                    self.say(f"  {' ' * len(person.who)}> {line}")
        done = subprocess.run(  # noqa: S603 - our own interpreter running our own client
            [sys.executable, "-m", "mns_client", *args],
            input=(stdin or "").encode(),
            capture_output=True,
            env=person.environment(self.gateway),
            timeout=300,
            check=False,
        )
        output = done.stdout.decode()
        if show and output.strip() and "--json" not in args:
            for line in output.rstrip("\n").splitlines():
                self.say("    " + line)
        if done.returncode not in expect:
            self.say(f"    ✗ exit {done.returncode}: {done.stderr.decode().strip() or output.strip()}")
            raise StepFailed(shown, done.returncode or 1)
        return done.returncode, output

    def mns_json(
        self, person: Person, *args: str, stdin: str | None = None, show: bool = True, expect: tuple[int, ...] = (0,)
    ) -> Any:
        return json.loads(self.mns(person, *args, "--json", stdin=stdin, show=show, expect=expect)[1])

    # -- the walk-through

    def run(self) -> int:
        self.say(f"MNS walk-through against the gateway at {self.gateway}")
        self.say(f"  alice: her node {self.alice.node}, her client folder {self.alice.home}")
        self.say(f"  bob:   his node {self.bob.node}, his client folder {self.bob.home}")
        try:
            self.setup()
            self.register()
            sent = self.send()
            self.stored(sent)
            self.read(sent[0])
            self.forward(sent[1])
            self.pay()
        except StepFailed as failed:
            self.say(f"\nThe walk-through stopped: `{failed.step}` failed (exit {failed.code}).")
            return failed.code
        self.say("\nDone: a name, two encrypted messages (one read, one forwarded), one payment.")
        self.say("The gateway saw only ciphertexts, signatures and public keys: never a plaintext or a private key.")
        return 0

    def setup(self) -> None:
        self.step("alice and bob set up their clients: a box key each, and a look at their own node")
        for person in (self.alice, self.bob):  # the flags are saved in their folders: later commands need none
            self.mns(person, "init", "--node", person.node, "--gateway", self.gateway)

    def register(self) -> None:
        self.step("alice registers the name `alice`: her node signs the binding and answers the gateway's handshake")
        current = self.whois_quietly()
        alice_key = self.identity(self.alice)
        if current is None:
            self.mns(self.alice, "register", NAME, "--payment-address", "node")
            return
        self.mns(self.alice, "forward", "--auto", "off", show=False)  # an earlier session may have turned it on
        if current["owner"] != alice_key:
            self.say(f"  `{NAME}` is held by another key on this gateway: this walk-through needs a fresh gateway")
            raise StepFailed("register", 4)
        self.say(f"  `{NAME}` is already alice's (from an earlier run): her node holds the name's owner key")
        box_key = to_hex(Home(self.alice.home).current_box_key().public)
        if current["box_key"] != box_key:
            self.say("  her client folder is new, so she publishes its box key (signed by her node):")
            self.mns(self.alice, "rotate-key", "--name", NAME)

    def send(self) -> list[dict[str, Any]]:
        self.step("bob looks alice up; his client verifies the binding's signature itself")
        self.mns(self.bob, "whois", NAME)
        self.step("bob sends alice two messages: each is a letter signed by his node, encrypted on his machine")
        self.say("  a short note, sealed to alice's box key (nacl-sealedbox-v1, the default):")
        first = self.mns_json(self.bob, "send", NAME, "--subject", "Lunch on Friday?", stdin=FIRST)
        self.say(f"    stored: message {first['message_id']}, the gateway's receipt came back to bob's node")
        with tempfile.TemporaryDirectory() as folder:
            notes = Path(folder) / "notes.txt"
            notes.write_text(SECOND)
            self.say("  a file, encrypted with maxencrypt to alice's Maxima key (maxima-rsa-v1):")
            args = ("send", NAME, str(notes), "--subject", "Meeting notes", "--scheme", "maxima-rsa-v1")
            second = self.mns_json(self.bob, *args)
        self.say(f"    stored: message {second['message_id']}")
        return [first, second]

    def stored(self, sent: list[dict[str, Any]]) -> None:
        self.step("what the gateway stored for alice: ciphertexts only")
        listing = self.mns_json(self.alice, "inbox", "--no-open")
        ours = {item["message_id"] for item in sent}
        for message in listing["messages"]:
            mark = "  ← new" if message["id"] in ours else ""
            self.say(
                f"    {message['id']}  {message['size']:>5} bytes of {message['scheme']} ciphertext, "
                f"{message['state']}{mark}"
            )

    def read(self, first: dict[str, Any]) -> None:
        self.step("option 1: alice lists, decrypts and reads on her machine (the gateway cannot)")
        self.mns(self.alice, "inbox")
        self.mns(self.alice, "read", first["message_id"])
        self.mns(self.alice, "delete", first["message_id"])

    def forward(self, second: dict[str, Any]) -> None:
        self.step("option 2: the gateway forwards what is left to alice's node over Maxima")
        self.say("  alice$ mns forward")
        # 6 or 7: some other message did not verify or arrive; what counts here is bob's second one
        result = self.mns_json(self.alice, "forward", show=False, expect=(0, 6, 7))
        arrived = {item["id"]: item for item in result["received"]}
        self.say(f"    the gateway forwarded {len(arrived)} message(s) to alice's node; her client opened them:")
        for item in arrived.values():
            verdict = "signature verified" if item.get("verified") else f"DOES NOT VERIFY: {item.get('problem')}"
            self.say(f"    {item['id']}  subject: {item.get('subject') or '-'}  ({verdict})")
            for line in (item.get("body") or "").splitlines():
                self.say(f"        {line}")
        mine = arrived.get(second["message_id"])
        if mine is not None and not mine.get("verified"):
            self.say(f"    ✗ bob's second message reached alice's node but does not verify: {mine.get('problem')}")
            raise StepFailed("mns forward", 6)
        if mine is None:
            inbox = self.mns_json(self.alice, "inbox", "--no-open", show=False, expect=(0,))
            state = next((row["state"] for row in inbox["messages"] if row["id"] == second["message_id"]), None)
            self.say("    ✗ " + not_forwarded(result, state))
            raise StepFailed("mns forward", 7)

    def pay(self) -> None:
        self.step("bob pays alice 10 Minima: the name's signed payment address, paid by bob's node")
        self.mns(self.bob, "pay", NAME, "10", "--yes")

    # -- helpers

    def whois_quietly(self) -> dict[str, Any] | None:
        done = subprocess.run(  # noqa: S603 - our own interpreter running our own client
            [sys.executable, "-m", "mns_client", "whois", NAME, "--json"],
            capture_output=True,
            env=self.bob.environment(self.gateway),
            timeout=60,
            check=False,
        )
        if done.returncode == 0:
            return json.loads(done.stdout)
        if done.returncode == 4:
            return None
        self.say(f"    ✗ {done.stderr.decode().strip() or done.stdout.decode().strip()}")
        raise StepFailed("mns whois alice", done.returncode)

    def identity(self, person: Person) -> str:
        return self.mns_json(person, "init", show=False)["node"]["publickey"]


def not_forwarded(result: dict[str, Any], state: str | None) -> str:
    """What happened to a message ``mns forward`` waited for in vain, from the gateway's answer to the forward
    (``queued``, ``in_flight``, ``retried``) and the message's state in the mailbox now."""
    counts = f"{result['queued']} queued now, {result['in_flight']} already being sent, {result['retried']} re-queued"
    if state == "forwarding":
        return (
            "bob's second message has not reached alice's node yet: the gateway holds it, queued for forwarding "
            f"({counts}), and its outbox keeps retrying the send from the gateway's node to hers; the reason a send "
            "failed is in the gateway's worker log (var/log/worker.log)"
        )
    if state == "forwarded":
        return (
            "the gateway's node delivered bob's second message to alice's node (state forwarded), but alice's "
            "client did not receive it from her node while it listened (her node did not post it to the client)"
        )
    if state is None:
        return "bob's second message is no longer in alice's mailbox: it was deleted, or expired, before forwarding"
    return f"the gateway did not queue bob's second message for forwarding (state {state}; {counts})"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mns_client.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="run_file", metavar="FILE", help="the JSON `make run` wrote (var/demo.json)")
    parser.add_argument("--gateway", metavar="URL")
    parser.add_argument("--alice-node", metavar="RPC")
    parser.add_argument("--bob-node", metavar="RPC")
    parser.add_argument("--alice-password", metavar="PW", help="alice's node RPC password, if it has one")
    parser.add_argument("--bob-password", metavar="PW")
    parser.add_argument("--alice-home", metavar="DIR", default=None, help="default: var/demo/alice")
    parser.add_argument("--bob-home", metavar="DIR", default=None, help="default: var/demo/bob")
    parser.add_argument("--pause", type=float, default=0.0, metavar="S", help="seconds between steps")
    args = parser.parse_args(argv)
    if args.run_file:
        try:
            saved = json.loads(Path(args.run_file).read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read {args.run_file}: {exc} (is `make run` running?)")
        for key in ("gateway", "alice_node", "bob_node", "alice_home", "bob_home"):
            if getattr(args, key) is None and saved.get(key):
                setattr(args, key, saved[key])
    missing = [flag for flag in ("gateway", "alice_node", "bob_node") if not getattr(args, flag)]
    if missing:
        parser.error("give " + ", ".join("--" + flag.replace("_", "-") for flag in missing) + " (or --from FILE)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    alice = Person("alice", args.alice_node, Path(args.alice_home or "var/demo/alice"), args.alice_password)
    bob = Person("bob", args.bob_node, Path(args.bob_home or "var/demo/bob"), args.bob_password)
    return Demo(args.gateway, alice, bob, out=sys.stdout, pause=args.pause).run()


if __name__ == "__main__":
    sys.exit(main())
