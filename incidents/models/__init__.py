"""The incidents domain: the guide's severity table, the service catalogue, incidents with their lifecycle,
the four response roles, the timeline, checklists, runbooks, five whys and status updates.

State changes go through incidents.services; these models hold data, constraints and small computed values.

One module per part: catalogue, incident (lifecycle, roles), timeline, response (checklists, runbooks, five whys),
updates. Django loads an app's models from `incidents.models`, and the whole project imports them from here.
"""

from .catalogue import (  # noqa: F401
    Service,
    SeverityPolicy,
)
from .incident import (  # noqa: F401
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    ROLE_RESPONSIBILITIES,
    STATUS_MEANINGS,
    DetectionSource,
    Incident,
    IncidentQuerySet,
    IncidentResponder,
    ReferenceCounter,
    Role,
    RoleAssignment,
    Status,
    user_sees_restricted,
)
from .response import (  # noqa: F401
    ChecklistItem,
    ChecklistPhase,
    ChecklistTemplateItem,
    FiveWhys,
    IncidentRunbook,
    Runbook,
    RunbookStep,
)
from .timeline import (  # noqa: F401
    KIND_OF_EVENT,
    EntryKind,
    EventType,
    TimelineEntry,
    event_types_of_kind,
)
from .updates import (  # noqa: F401
    UPDATE_STATUSES_BY_KIND,
    StatusUpdate,
    UpdateKind,
    UpdateStatus,
)
