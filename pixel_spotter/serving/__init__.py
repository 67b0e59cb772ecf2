"""Serving: trained runs and exported files as untrusted inputs; image input, predict, export and reading an export."""
