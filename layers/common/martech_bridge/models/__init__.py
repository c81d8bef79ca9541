"""Contracts: API payloads, domain values and stored items, each checked where it enters (by hand or by msgspec)."""
