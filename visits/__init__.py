"""Scheduled visits: slots, booking rules, the booking store and the visit's life (PROTOCOL v1.2)."""
