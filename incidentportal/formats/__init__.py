"""Django's format overrides (settings.FORMAT_MODULE_PATH): the admin's lists and read-only fields, and any
`{{ value|date }}` without an explicit format, write moments the portal's one way (incidents.profiles.zones:
"Tue 1 Dec 2026, 15:47 CET", in the zone active for the request, i.e. the reader's)."""
