"""Every state change of post-mortems and action items, one module per idea: drafting, editing, publishing,
action_items, reminders; rules holds what they share. Each function takes the acting user (None for the
portal itself), runs in one transaction, locks what it changes (the incident row first, then the post-mortem,
the same order change_status uses), writes a timeline entry on the incident in the same transaction and
enqueues emails with transaction.on_commit. Views, admin and tasks all call these.
"""
