"""Test-only helpers (not imported by the server)."""
