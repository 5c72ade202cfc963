"""The append-only audit trail and evidence bundles."""
