"""Contracts: API payloads, domain values and stored items, each validated where it enters."""
