"""The ground floor: domain, settings, errors, tokens, Redis helpers, task lifecycle, the HTTP
error shape and the pure tariff rules. Imports nothing else of the project (docs/architecture.md)."""
