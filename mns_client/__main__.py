"""``python -m mns_client``: the ``mns`` command line."""

import sys

from mns_client.cli import main

sys.exit(main())
