"""The on-call directory and schedules, from the guide's "Response Team Structure", "On-Call Rotation",
"Escalation Path" and "Contact Information" sections.

- Directory: Person (contact) with ContactMethods and NotificationRules (when to use which), Team, Vendor,
  Hotline (emergency contacts and escalation hotlines), ResponseRoleDefault (primary/backup per response role).
- Schedules: Rotation with ordered RotationMembers per Slot (primary, secondary, incident commander), and Overrides.
  Rotations are structured data; `oncall.resolver` computes shifts from them in Python.
- Escalation: EscalationPolicy -> ordered EscalationLevels -> EscalationTargets; `oncall.escalation.plan_escalation`
  turns a policy into a timed schedule.
- CalendarFeed: the per-person secret token behind the ICS feed URLs.

One module per part: directory, schedules (with the calendar feeds) and escalation. Django loads an app's models
from `oncall.models`, and the project imports them from here.
"""

from .directory import (  # noqa: F401
    ContactMethod,
    Hotline,
    NotificationRule,
    Person,
    ResponseRoleDefault,
    Slot,
    Team,
    Vendor,
)
from .escalation import (  # noqa: F401
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
)
from .schedules import (  # noqa: F401
    CalendarFeed,
    Override,
    OverrideQuerySet,
    Rotation,
    RotationMember,
    new_calendar_token,
)
