"""Governance: vault, egress guard, provenance, ledger, ratios. No torch, no UI."""
