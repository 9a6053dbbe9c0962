from rest_framework import serializers


class EntrySerializer(serializers.Serializer):
    maxima_address = serializers.CharField(help_text="The gateway's permanent MAX# address.")
    identity_key = serializers.CharField(help_text="The gateway's Maxima identity key (0x…).")
    api_url = serializers.CharField(help_text="The gateway's REST API.")


class EntryPointsSerializer(serializers.Serializer):
    """The newest confirmed list, as it is on chain, with where it was found."""

    v = serializers.IntegerField()
    seq = serializers.IntegerField(help_text="Rises by one with every publication.")
    issued_at = serializers.IntegerField(help_text="When the publisher made the list (ms since the epoch).")
    entries = EntrySerializer(many=True)
    coinid = serializers.CharField(help_text="The bulletin coin carrying the list.")
    block = serializers.IntegerField(help_text="The block that mined it.")
    tokenid = serializers.CharField(help_text="The entry-point token.")
    address = serializers.CharField(help_text="The bulletin script's address.")
    owner = serializers.CharField(help_text="The publisher's key in state port 0.")


def entry_points_data(publication: object, config: dict[str, str]) -> dict:
    bulletin = publication.bulletin  # type: ignore[attr-defined]
    return EntryPointsSerializer(
        {
            **bulletin,
            "coinid": publication.coinid,  # type: ignore[attr-defined]
            "block": publication.block or 0,  # type: ignore[attr-defined]
            "tokenid": config["tokenid"],
            "address": config["address"],
            "owner": config["owner"],
        }
    ).data
