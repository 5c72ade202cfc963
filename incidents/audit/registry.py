"""What the audit trail covers: every model of these apps, found at start-up, so models other areas add later
are covered without registering them here. Only the exclusions below are listed, each with its reason."""

AUDITED_APP_LABELS = frozenset({"incidents", "oncall", "paging", "postmortems", "statuspage", "alerting", "auth"})

# Whole models left out, "app_label.model_name" -> why.
EXCLUDED_MODELS = {
    # Bumped on every declaration; the incident's own "created" record already carries its number.
    "incidents.referencecounter": "number allocator; the incident's creation record carries the number",
}

# Fields whose change alone never makes a record (they are still shown when something else changed).
NOISE_FIELDS: dict[str, set[str]] = {
    # Written on every log-in by django.contrib.auth; log-ins are recorded by django-axes (AccessLog).
    "auth.user": {"last_login"},
}


def is_audited(model) -> bool:
    meta = model._meta
    if meta.app_label not in AUDITED_APP_LABELS or meta.abstract or meta.proxy:
        return False
    if meta.auto_created:  # many-to-many through tables: recorded as m2m changes on their owner
        return False
    return f"{meta.app_label}.{meta.model_name}" not in EXCLUDED_MODELS
