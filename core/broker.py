"""kombu's filesystem transport (the embedded default's broker), whose messages appear in the queue folder whole.

kombu writes a message by opening its final name in the queue folder and then writing into it, and takes a message
by moving any file of that name pattern out of the folder and reading it, without the lock the writer holds: a
worker that looked at the wrong moment read an empty or half-written file, failed to decode it and stopped
("Unrecoverable error: JSONDecodeError", seen under the Maxima bench on the embedded default). Here a message is
written under a name the reader never takes and renamed to its final name once whole; a rename within one folder
is atomic, so the reader sees the whole message or nothing.
"""

import contextlib
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict, **kwargs: object) -> None:
        """Put ``payload`` on ``queue``: written as ``.<name>.part``, then renamed to kombu's own name for it."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")  # its suffix is no queue's: never taken
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
