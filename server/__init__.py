"""Lifeline's aiohttp application: HTTP API, auth and roles, persistence, audit, CLI."""
