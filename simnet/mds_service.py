"""A MiniDapp's ``service.js``, run as the node runs it (ServiceJSRunner), in Node.js instead of Rhino.

Each runner owns one ``node mds_files/service-shim.js`` child process and one thread. The shim gives the script an
``MDS`` object whose calls are synchronous, as in Rhino, and bridges them here over two pipes (one JSON object a
line); the thread answers them with the same code the pages' ``/mdscommand_/`` endpoint uses, so a READ-mode
service meets pending actions too. Events are delivered one at a time, in the order MDS posts them, after the
script's start (``MDS.init`` calls back ``inited`` then ``MDSINIT`` at once, as MDSJS does).
"""

import json
import logging
import os
import queue
import shutil
import subprocess
import threading
from typing import IO, TYPE_CHECKING, Any

from simnet import javajson
from simnet.mds import FILES, MiniDapp

if TYPE_CHECKING:
    from simnet.mds import Mds

logger = logging.getLogger(__name__)

SHIM = FILES / "service-shim.js"


class ServiceRunner:
    def __init__(self, mds: "Mds", dapp: MiniDapp) -> None:
        self.mds = mds
        self.dapp = dapp
        self.errors: list[str] = []
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._process: subprocess.Popen[bytes] | None = None
        self._to_child: IO[bytes] | None = None
        self._from_child: IO[bytes] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            self.errors.append("node (Node.js) not found: service.js not started")
            logger.error("simnet mds: Node.js not found, %s's service.js not started", self.dapp.name)
            return
        child_read, parent_write = os.pipe()
        parent_read, child_write = os.pipe()
        folder = str(self.mds.folder(self.dapp.uid))
        self._process = subprocess.Popen(  # noqa: S603 (our own shim, run by the node binary found on PATH)
            [node, str(SHIM), folder, str(child_read), str(child_write)],
            pass_fds=(child_read, child_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(child_read)
        os.close(child_write)
        self._to_child = os.fdopen(parent_write, "wb", buffering=0)
        self._from_child = os.fdopen(parent_read, "rb")
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self._thread = threading.Thread(target=self._run, name=f"simnet-service-{self.dapp.name}", daemon=True)
        self._thread.start()

    def deliver(self, message: dict[str, Any]) -> None:
        if self._process is not None:  # a service that could not start keeps nothing
            self._events.put(message)

    def stop(self) -> None:
        self._events.put(None)
        process = self._process
        if process is not None:
            process.kill()
            process.wait(timeout=10)
        for pipe in (self._to_child, self._from_child):
            if pipe is not None:
                pipe.close()

    # ------------------------------------------------------------------------------------ the bridge

    def _drain_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        for line in self._process.stderr:
            text = line.decode("utf-8", errors="replace").rstrip()
            self.errors.append(text)
            logger.warning("simnet mds service %s: %s", self.dapp.name, text)

    def _run(self) -> None:
        try:
            self._serve_until_done()
            while True:
                message = self._events.get()
                if message is None:
                    return
                self._send({"t": "event", "m": message})
                self._serve_until_done()
        except (OSError, ValueError) as exc:
            logger.debug("simnet mds service %s ended (%s)", self.dapp.name, exc)

    def _send(self, obj: dict[str, Any]) -> None:
        assert self._to_child is not None
        self._to_child.write(json.dumps(obj).encode() + b"\n")

    def _serve_until_done(self) -> None:
        """Answer the script's MDS calls until it has finished with the current event (or its start)."""
        assert self._from_child is not None
        for line in self._from_child:
            request = json.loads(line)
            kind = request["t"]
            if kind == "done":
                return
            if kind == "log":
                self._log(request["d"])
            elif kind == "error":
                self.errors.append(request["d"])
                logger.warning("simnet mds service %s: %s", self.dapp.name, request["d"])
            elif kind == "req":
                self._send({"t": "reply", "r": self._answer(request["f"], request["d"])})
        raise OSError("service.js process ended")

    def _log(self, text: str) -> None:
        self.mds.logs.append((self.dapp.name, text))
        logger.info("MDS_%s_%s > %s", self.dapp.name, self.dapp.uid, text)

    def _answer(self, function: str, data: str) -> str:
        from simnet.mds_http import run_function

        if function == "cmd":
            return self.mds.run_command(self.dapp, data)
        if function == "sql":
            return javajson.dumps(self.mds.sql(self.dapp.uid, data))
        return run_function(self.mds, self.dapp, function, data) or '{"status":true,"pending":false}'
