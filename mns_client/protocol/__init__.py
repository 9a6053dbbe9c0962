"""The MNS protocol core, shared byte for byte by the gateway, the ``mns`` client and simnet.

Wire formats, canonical statements, envelopes, the crypto and the Minima codecs and RPC caller. Pure Python:
nothing here imports Django, the gateway's apps, or the user's side of the client (``mns_client.sdk``, ``cli``,
``config``), and ``mns_client/tests/test_boundary.py`` holds it to that.
"""
