"""Pages, escalation timers, the notification outbox and its delivery channels."""
