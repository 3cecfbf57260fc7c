"""Reaching families through Web Push (PROTOCOL v1.2 "Reaching families: Web Push"): the VAPID
key, push subscriptions, and a durable outbox that delivers RFC 8030 messages."""
