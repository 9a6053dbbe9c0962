"""The mailboxes' fixtures (owners with real RSA keys, the gateway's node as supervision saw it, fresh rate
counters): a registration ends in a mailbox."""

from mailboxes.tests.conftest import *  # noqa: F403
