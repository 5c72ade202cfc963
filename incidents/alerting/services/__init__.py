"""State changes for alerting, one module per idea: integrations (keys, refused requests, replayed signatures),
routing, ingestion (with group_commit, its single-statement path for alert storms), change events and API tokens."""
