"""Business hours, for the P3 response target ("next business day"). Configured in settings, not data."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings


def _hours():
    start = time.fromisoformat(settings.BUSINESS_DAY_START)
    end = time.fromisoformat(settings.BUSINESS_DAY_END)
    return ZoneInfo(settings.BUSINESS_TIMEZONE), start, end, set(settings.BUSINESS_DAYS)


def is_business_hours(moment: datetime) -> bool:
    tz, start, end, days = _hours()
    local = moment.astimezone(tz)
    return local.weekday() in days and start <= local.time() < end


def end_of_next_business_day(moment: datetime) -> datetime:
    """The close of business on the first business day after the one `moment` falls in."""
    tz, _start, end, days = _hours()
    local = moment.astimezone(tz)
    day = local.date() + timedelta(days=1)
    while day.weekday() not in days:
        day += timedelta(days=1)
    return datetime.combine(day, end, tzinfo=tz)


def next_business_hours_start(moment: datetime) -> datetime:
    """`moment` itself if it is within business hours, else the next opening time."""
    tz, start, end, days = _hours()
    local = moment.astimezone(tz)
    if is_business_hours(moment):
        return moment
    day = local.date()
    if local.weekday() in days and local.time() < start:
        return datetime.combine(day, start, tzinfo=tz)
    day += timedelta(days=1)
    while day.weekday() not in days:
        day += timedelta(days=1)
    return datetime.combine(day, start, tzinfo=tz)
