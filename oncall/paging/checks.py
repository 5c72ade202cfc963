"""`manage.py check --deploy`: warn when the directory uses a channel whose backend reaches nobody."""

from __future__ import annotations

from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError

from . import selectors


def paging_channels_reach_someone(app_configs=None, databases=None, **kwargs):
    try:
        warning = selectors.channel_warning()
    except DatabaseError:  # no database yet (a fresh checkout before migrate): nothing in the directory to warn of
        return []
    if not warning:
        return []
    return [
        CheckWarning(
            warning,
            hint="Configure Twilio (README: Paging channels), or give these people and hotlines an email address.",
            id="paging.W001",
        )
    ]
