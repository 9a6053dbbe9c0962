"""What this gateway has read of names on chain, read-only: the coins and the proofs."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from onchain.models import ChainCoin, ChainProof


@admin.register(ChainCoin)
class ChainCoinAdmin(ReadOnlyAdmin):
    list_display = ("name", "created_block", "owner", "transfer", "valid", "seen_at")
    list_filter = ("valid",)
    search_fields = ("=name",)
    fields = ("coinid", "name", "owner", "transfer", "data", "datahex", "created_block", "valid", "seen_at")
    readonly_fields = fields


@admin.register(ChainProof)
class ChainProofAdmin(ReadOnlyAdmin):
    list_display = ("name", "holder", "proved_at")
    search_fields = ("=name",)
    fields = ("name", "owner_key", "holder", "proved_at")
    readonly_fields = fields
