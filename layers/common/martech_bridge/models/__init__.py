"""Contracts: API payloads, domain values and stored items, each checked by pydantic or msgspec."""
