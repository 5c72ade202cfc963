"""Inbound integrations, alert groups with deduplication, change events."""
