"""Contracts: API payloads, domain values and stored items, each validated by pydantic."""
