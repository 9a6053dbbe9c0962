"""``python manage.py simnet``: run the simulated Maxima network until SIGTERM or SIGINT.

Prints one JSON line per node once all of them answer, then serves until stopped. The work is done by
``simnet``; this command only parses options and waits.
"""

import json
import signal
import sys
import threading
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from simnet import ControlServer, SendTiming, SimNetwork
from simnet.network import MLS_GAP_SECONDS
from simnet.node import UNREACHABLE_MODES


def _indexes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


class Command(BaseCommand):
    help = "Run simnet, the simulated Maxima network (N nodes on loopback) until stopped."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--nodes", type=int, default=2, help="number of nodes (default 2)")
        parser.add_argument("--base-port", type=int, default=None, help="RPC of node i is base+i (default: free)")
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--state", default=None, help="directory that keeps keys, hooks and chain across runs")
        parser.add_argument("--rpc-password", default=None, help="turn on Basic auth (user minima)")
        parser.add_argument(
            "--mds-password",
            default=None,
            help="serve MDS (the MiniDapp system) on each node with this hub password (node i: base+3*nodes+i)",
        )
        parser.add_argument("--block-interval", type=float, default=2.0, help="seconds between blocks (default 2)")
        parser.add_argument(
            "--unreachable",
            type=_indexes,
            default=(),
            metavar="I,J",
            help="nodes that cannot be reached directly, only through node 0 as their Maxima host (e.g. 1,2)",
        )
        parser.add_argument(
            "--unreachable-mode",
            choices=UNREACHABLE_MODES,
            default="refuse",
            help="what a direct send to them meets: refuse (at once) or silent (the 20 s read timeout)",
        )
        parser.add_argument(
            "--mls-gap",
            type=float,
            default=MLS_GAP_SECONDS,
            help=f"seconds a restarted node's MAX# address stays dark (default {MLS_GAP_SECONDS:.0f}, as measured)",
        )
        parser.add_argument(
            "--confirmations",
            type=int,
            default=3,
            help="blocks deep a coin must be to be spent (default 3, as real nodes)",
        )
        parser.add_argument("--control-port", type=int, default=None, help="fault-control endpoint on 127.0.0.1")
        measured = SendTiming()
        sends = parser.add_argument_group("send timing", "how long each node's maxima sends take (simnet.sending)")
        sends.add_argument(
            "--send-base-seconds",
            type=float,
            default=measured.base_seconds,
            help=f"one small send alone (default {measured.base_seconds}, as measured; 0 with the others: instant)",
        )
        sends.add_argument(
            "--send-full-seconds",
            type=float,
            default=measured.full_seconds,
            help=f"added for 250 000 bytes, growing with the square of the size (default {measured.full_seconds})",
        )
        sends.add_argument(
            "--send-serial-share",
            type=float,
            default=measured.serial_share,
            help=f"share of a send the node does one at a time (default {measured.serial_share})",
        )
        sends.add_argument(
            "--send-contention",
            type=float,
            default=measured.contention,
            help=f"slow-down of the pipeline per send waiting in it (default {measured.contention})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["nodes"] < 1:
            raise CommandError("--nodes must be at least 1")
        if any(not 0 < i < options["nodes"] for i in options["unreachable"]):
            raise CommandError("--unreachable names nodes 1 … nodes-1 (node 0 is their host)")
        if options["confirmations"] < 0:
            raise CommandError("--confirmations cannot be negative")
        try:
            timing = SendTiming(
                base_seconds=options["send_base_seconds"],
                full_seconds=options["send_full_seconds"],
                serial_share=options["send_serial_share"],
                contention=options["send_contention"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        network = SimNetwork(
            nodes=options["nodes"],
            base_port=options["base_port"],
            host=options["host"],
            state_dir=options["state"],
            rpc_password=options["rpc_password"],
            block_interval=options["block_interval"],
            unreachable=options["unreachable"],
            unreachable_mode=options["unreachable_mode"],
            send_timing=timing,
            mls_gap=options["mls_gap"],
            confirmations=options["confirmations"],
            mds_password=options["mds_password"],
        )
        stop = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        network.start()
        control = ControlServer(network, options["control_port"]) if options["control_port"] is not None else None
        if control is not None:
            self.stderr.write(f"simnet control endpoint: http://127.0.0.1:{control.port}/nodes")
        try:
            for line in network.summaries():
                sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
        finally:
            if control is not None:
                control.close()
            network.close()
