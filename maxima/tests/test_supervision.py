"""Node supervision against simnet: identity learnt, webhook kept registered, state visible in health."""

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from maxima.models import NodeState
from maxima.node import hook_url
from maxima.selectors import gateway_address, gateway_identity_key
from maxima.services import node_supervise
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork

pytestmark = pytest.mark.django_db


def test_it_learns_the_gateways_identity_and_registers_the_webhook(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    state = node_supervise(client=gateway_node)
    assert state.reachable is True
    assert state.publickey == simnet.nodes[0].publickey_hex
    assert gateway_identity_key() == simnet.nodes[0].publickey_hex
    assert gateway_address() == state.p2pidentity
    assert state.block is not None
    assert gateway_node.webhooks_list() == [f"MAXIMA#{hook_url()}"]
    assert "<secret>" in state.webhook


def test_running_again_changes_nothing_on_the_node(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    node_supervise(client=gateway_node)
    registered_at = NodeState.objects.get().webhook_registered_at
    node_supervise(client=gateway_node)
    assert gateway_node.webhooks_list() == [f"MAXIMA#{hook_url()}"]
    assert NodeState.objects.get().webhook_registered_at == registered_at


def test_a_lost_webhook_is_registered_again(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    node_supervise(client=gateway_node)
    gateway_node.webhooks_remove(f"MAXIMA#{hook_url()}")  # a node started on a fresh data folder
    node_supervise(client=gateway_node)
    assert gateway_node.webhooks_list() == [f"MAXIMA#{hook_url()}"]


def test_an_old_hook_of_ours_is_removed_and_other_hooks_are_left_alone(
    simnet: SimNetwork, gateway_node: MinimaRPC, settings: object
) -> None:
    base = settings.MNS_HOOK_BASE_URL
    gateway_node.webhooks_add(hook=f"{base}/maxima/hook/{'0' * 40}/", filter="MAXIMA")
    gateway_node.webhooks_add(hook="http://127.0.0.1:7000/other-app", filter="NEWCOIN")
    node_supervise(client=gateway_node)
    assert gateway_node.webhooks_list() == ["NEWCOIN#http://127.0.0.1:7000/other-app", f"MAXIMA#{hook_url()}"]


def test_a_stopped_node_is_recorded_as_unreachable_and_then_as_back(
    simnet: SimNetwork, gateway_node: MinimaRPC
) -> None:
    node_supervise(client=gateway_node)
    simnet.nodes[0].stop()
    state = node_supervise(client=MinimaRPC(simnet.nodes[0].rpc_url, timeout=2))
    assert (state.reachable, state.publickey) == (False, simnet.nodes[0].publickey_hex)
    assert state.error.startswith("status: ")
    simnet.nodes[0].start()
    assert node_supervise(client=gateway_node).reachable is True


def test_health_names_the_node_when_it_is_down(simnet: SimNetwork, gateway_node: MinimaRPC, client: Client) -> None:
    ok = json.loads(client.get("/api/v1/health").content)
    assert ok["checks"]["node"]["ok"] is True
    simnet.nodes[0].stop()
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert json.loads(response.content)["detail"] == "Not working: node."


def test_maxima_status_prints_what_supervision_learnt(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    out = StringIO()
    call_command("maxima_status", stdout=out)
    text = out.getvalue()
    assert "reachable  True" in text
    assert simnet.nodes[0].publickey_hex in text
    assert NodeState.objects.get().reachable is True


def test_maxima_status_marks_what_it_could_not_read_now_as_last_known_with_its_age(
    simnet: SimNetwork, gateway_node: MinimaRPC
) -> None:
    call_command("maxima_status", stdout=StringIO())
    simnet.nodes[0].stop()
    out = StringIO()
    with pytest.raises(CommandError, match="is not reachable"):
        call_command("maxima_status", stdout=out)
    rows = {line[:14].strip(): line[16:] for line in out.getvalue().splitlines()}
    last_known = r"  \(last known, \d+ s ago\)"
    assert rows["reachable"] == "False"
    assert re.fullmatch(rf"{re.escape(simnet.nodes[0].publickey_hex)}{last_known}", rows["identity key"])
    assert re.fullmatch(rf"\d+{last_known}", rows["block"])
    assert re.fullmatch(rf".+{last_known}", rows["version"])


def test_maxima_status_without_a_node_says_which_variable_to_set(settings: object) -> None:
    settings.MINIMA_RPC_URL = None
    with pytest.raises(CommandError, match="set MINIMA_RPC_URL"):
        call_command("maxima_status", stdout=StringIO())


def test_the_policy_shows_the_gateways_maxima_identity(
    simnet: SimNetwork, gateway_node: MinimaRPC, client: Client
) -> None:
    node_supervise(client=gateway_node)
    body = json.loads(client.get("/.well-known/mns.json").content)
    assert body["maxima"] == {
        "publickey": simnet.nodes[0].publickey_hex,
        "address": NodeState.objects.get().p2pidentity,
    }
