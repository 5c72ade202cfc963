"""Public status page: service states, scheduled maintenance, subscribers."""
