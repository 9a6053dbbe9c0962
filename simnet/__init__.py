"""simnet: the project's simulated Maxima network, a stand-in for real Minima nodes in tests, CI and ``make run``.

Each node serves the RPC on its own loopback port with real RSA-1024 identity keys, ``Mx`` addresses and the reply
envelopes, webhook POSTs and delivery errors of the real-node fixtures in ``docs/vectors/maxima/``. Plain Python on
top of ``mns_client``'s codecs and crypto: no Django, so tests can start it in-process::

    with SimNetwork(nodes=2, block_interval=0.5) as net:
        a, b = net.nodes
        ...  # talk to a.rpc_url, b.rpc_url

or from the command line: ``python manage.py simnet --nodes 2 --base-port 9100``.
"""

from simnet.control import ControlServer
from simnet.network import SimNetwork
from simnet.node import Faults, SimNode
from simnet.sending import SendTiming

__all__ = ["ControlServer", "Faults", "SendTiming", "SimNetwork", "SimNode"]
