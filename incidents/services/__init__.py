"""Every state change of an incident, one module per idea: status (declare, acknowledge, status and severity),
details, roles, entries (notes, chat messages, five whys), checklist (and runbooks), updates; rules holds what they
share. Each function takes the acting user (None for the portal itself),
runs in one transaction, locks the incident row, validates, changes, writes the timeline entry in the same
transaction and enqueues side effects with transaction.on_commit. Views, API, admin and tasks all call these.

What other apps do about it (paging starts and stops, the post-mortem is drafted, chat is told) they do by
subscribing to the typed events these functions publish (incidents/lifecycle.py); this package imports neither
`oncall` nor `postmortems`.
"""
