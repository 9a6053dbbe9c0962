"""A throwaway PostgreSQL cluster of the fault suite's own, which it may stop (immediate) and start again."""

import os
import shutil
import subprocess
from pathlib import Path


def _pg_bin(tool: str) -> str:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / tool).exists():
            return str(folder / tool)
    found = shutil.which(tool)
    if not found:
        raise SystemExit(f"faults: {tool} not found (install PostgreSQL's server package)")
    return found


def _as_postgres(args: list[str]) -> list[str]:
    """Commands that own the cluster run as ``postgres`` when we are root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    """A throwaway PostgreSQL cluster; ``stop_immediate`` and ``start`` are what the PostgreSQL fault uses."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.data, self.sockets, self.log = folder / "data", folder / "sock", folder / "postgres.log"

    def init(self) -> None:
        self.sockets.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.sockets, "postgres")
        initdb = [_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]
        subprocess.run(_as_postgres(initdb), check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        command = [_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"]
        subprocess.run(_as_postgres(command), check=True, stdout=subprocess.DEVNULL)

    def stop_immediate(self) -> None:
        command = [_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_postgres(command), check=True, stdout=subprocess.DEVNULL)

    def answers(self) -> bool:
        ready = [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]
        return subprocess.run(ready, check=False).returncode == 0


def from_env() -> Cluster:
    """The cluster ``python -m faults`` started, as the tests see it."""
    folder = Path(os.environ["MNS_FAULTS_PG_FOLDER"])
    return Cluster(folder, int(os.environ["MNS_FAULTS_PG_PORT"]))
