"""Loopback stand-ins for kintone, SendGrid, Braze, Infobip and KARTE: each checks the auth it expects,
answers in the provider's own dialect, records what it received, and injects faults on demand."""
