"""English formats: moments as incidents.profiles.zones.MOMENT_FORMAT, dates as its DATE_FORMAT. Input formats
stay Django's (forms read "2026-12-01 15:47")."""

from incidents.profiles.zones import DATE_FORMAT as PORTAL_DATE_FORMAT
from incidents.profiles.zones import MOMENT_FORMAT

DATETIME_FORMAT = MOMENT_FORMAT
SHORT_DATETIME_FORMAT = MOMENT_FORMAT
DATE_FORMAT = PORTAL_DATE_FORMAT
SHORT_DATE_FORMAT = PORTAL_DATE_FORMAT
