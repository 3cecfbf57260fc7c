"""Pure unit tests, by package: no Redis, no network, no processes (``pytest tests/unit``)."""
