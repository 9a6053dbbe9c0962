"""The mailboxes' fixtures (owners with real RSA keys, the gateway's node as supervision saw it, fresh rate
counters): a name on chain is registered here through the same flow."""

from mailboxes.tests.conftest import *  # noqa: F403
