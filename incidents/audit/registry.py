"""What the audit trail covers: every model of these apps, found at start-up, so models other areas add later
are covered without registering them here. Only the exclusions below are listed, each with its reason."""

AUDITED_APP_LABELS = frozenset(
    {"incidents", "oncall", "paging", "postmortems", "statuspage", "alerting", "auth", "accounts"}
)

# Whole models left out, "app_label.model_name" -> why.
EXCLUDED_MODELS = {
    # Bumped on every declaration; the incident's own "created" record already carries its number.
    "incidents.referencecounter": "number allocator; the incident's creation record carries the number",
    # One row per received alert (a webhook of 100 alerts writes 100), itself an append-only record of what
    # arrived; its group's creation, incident link and state changes are audited, and evidence bundles
    # include the events through the group.
    "alerting.alertevent": "append-only log of received alerts, one row each; audited through its AlertGroup",
    "alerting.integrationerror": "log of refused inbound requests, written outside any change",
    # Outbox rows (one per update per subscriber), their state flips on every send attempt.
    "statuspage.updatedelivery": "email outbox state; the update it delivers is audited",
    "statuspage.historyrollup": "rendered cache of the public page's history, rebuilt from audited rows",
    "alerting.seensignature": "replay window of webhook signatures (pruned hourly); the deliveries it admits are "
    "audited through their alert groups",
    # The paging outbox: one row per recipient and channel, state flips on every send attempt; the page it
    # belongs to (level, acknowledgement) is audited and failures are written to the incident timeline.
    "paging.notification": "paging outbox state; its page is audited and failures reach the timeline",
    # Crash-recovery marks of the paging sender, deleted when its batch commits; the notification's own state is
    # what the paging panel and the timeline show.
    "paging.sentmark": "sender's crash-recovery mark, deleted by the batch's commit",
}

# Fields whose change alone never makes a record (they are still shown when something else changed).
NOISE_FIELDS: dict[str, set[str]] = {
    # Written on every log-in by django.contrib.auth; log-ins are recorded by django-axes (AccessLog).
    "auth.user": {"last_login"},
    # Bumped on every API request or alert repeat; the token's creation and revocation are what matter.
    "alerting.apitoken": {"last_used_at"},
    "alerting.alertgroup": {"event_count", "last_seen_at"},
    "statuspage.subscriber": {"confirmation_sent_at"},
    # The ping rate limit's per-minute counter, written with every ping.
    "alerting.heartbeat": {"rate_window", "rate_count"},
}


def is_audited(model) -> bool:
    meta = model._meta
    if meta.app_label not in AUDITED_APP_LABELS or meta.abstract or meta.proxy:
        return False
    if meta.auto_created:  # many-to-many through tables: recorded as m2m changes on their owner
        return False
    return f"{meta.app_label}.{meta.model_name}" not in EXCLUDED_MODELS
