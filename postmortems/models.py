"""Post-mortems, action items and reports (see the post-mortems issue)."""
