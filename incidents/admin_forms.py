"""The incident admin's change form: status, severity, roles, responders and runbooks have companion "change"
inputs next to their read-only values, and the descriptive fields are saved by update_incident_details.
`check_requested_changes` asks each service's check_* function while the form validates (they write nothing);
`apply_requested_changes` makes the changes through the services when the admin saves."""

from django import forms
from django.contrib.auth import get_user_model

from .errors import DomainError
from .models import Incident, Role, Runbook, SeverityPolicy, Status
from .services import checklist as checklist_services
from .services import details as details_services
from .services import roles as roles_services
from .services import status as status_services


class IncidentAdminForm(forms.ModelForm):
    """The incident's own descriptive fields, plus inputs for the changes that must go through services."""

    new_status = forms.ChoiceField(
        label="Change status to", required=False, choices=[("", "(keep)")] + list(Status.choices)
    )
    status_note = forms.CharField(
        label="Note for the timeline", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    override_reason = forms.CharField(
        label="Closure override reason",
        required=False,
        help_text="Managers only: closes the incident although the closure checklist is incomplete.",
    )
    new_severity = forms.ModelChoiceField(
        label="Change severity to", required=False, queryset=SeverityPolicy.objects.order_by("rank")
    )
    severity_reason = forms.CharField(label="Why the severity changes", required=False)
    assign_role = forms.ChoiceField(label="Assign role", required=False, choices=[("", "(none)")] + list(Role.choices))
    role_holder = forms.ModelChoiceField(
        label="to", required=False, queryset=get_user_model().objects.filter(is_active=True).order_by("username")
    )
    add_responder = forms.ModelChoiceField(
        label="Add responder",
        required=False,
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
    )
    attach_runbook = forms.ModelChoiceField(label="Attach runbook", required=False, queryset=Runbook.objects.all())

    class Meta:
        model = Incident
        fields = [
            "title",
            "summary",
            "is_restricted",
            "detection_source",
            "services",
            "impact",
            "users_affected_percent",
            "detected_at",
        ]

    # Set by IncidentAdmin.get_form: the user acting, for the services.
    request_user = None

    # DomainError.field -> the input it belongs to on this form.
    FIELD_FOR_ERROR = {
        "status": "new_status",
        "reason": "severity_reason",
        "severity": "new_severity",
        "role": "assign_role",
        "holder": "role_holder",
        "runbook": "attach_runbook",
        **{name: name for name in details_services.DETAIL_FIELDS},
    }

    def clean(self):
        """Ask the services whether they would accept each requested change. Nothing is written here: the
        changes are made by IncidentAdmin.save_model through the same services, once everything is valid."""
        cleaned = super().clean()
        if self.errors or self.instance.pk is None:
            return cleaned
        # The stored row: the ModelForm copies the typed values onto self.instance after clean().
        incident = Incident.objects.select_related("severity").get(pk=self.instance.pk)
        try:
            check_requested_changes(incident, by=self.request_user, cleaned=cleaned)
        except DomainError as error:
            self.add_error(self.FIELD_FOR_ERROR.get(error.field), error.message)
        return cleaned


def _detail_values(cleaned) -> dict:
    return {
        "title": cleaned.get("title"),
        "summary": cleaned.get("summary"),
        "impact": cleaned.get("impact"),
        "services": list(cleaned.get("services") or ()),
        "restricted": cleaned.get("is_restricted"),
        "detected_at": cleaned.get("detected_at"),
        "detection_source": cleaned.get("detection_source"),
        "users_affected_percent": cleaned.get("users_affected_percent"),
    }


def check_requested_changes(incident: Incident, *, by, cleaned) -> None:
    """Every change the form asks for, checked by the service that would make it; raises DomainError."""
    details_services.check_details_change(incident, by=by, **_detail_values(cleaned))
    if cleaned.get("new_severity"):
        status_services.check_severity_change(
            incident, severity=cleaned["new_severity"], by=by, reason=cleaned.get("severity_reason", "")
        )
    elif cleaned.get("severity_reason"):
        raise DomainError("Choose the new severity, or leave the reason empty.", field="severity")
    if cleaned.get("assign_role"):
        roles_services.check_role_assignment(
            incident, role=cleaned["assign_role"], holder=cleaned.get("role_holder"), by=by
        )
    elif cleaned.get("role_holder"):
        raise DomainError("Choose the role to assign.", field="role")
    if cleaned.get("attach_runbook"):
        checklist_services.check_runbook_attachment(incident, runbook=cleaned["attach_runbook"])
    if cleaned.get("new_status"):
        status_services.check_status_change(
            incident, to=cleaned["new_status"], by=by, override_reason=cleaned.get("override_reason", "")
        )


def apply_requested_changes(incident: Incident, *, by, cleaned) -> None:
    """The changes the form asked for, each through its service, in the order the checks assumed."""
    details_services.update_incident_details(incident=incident, by=by, **_detail_values(cleaned))
    if cleaned.get("new_severity"):
        status_services.change_severity(
            incident=incident, severity=cleaned["new_severity"], by=by, reason=cleaned.get("severity_reason", "")
        )
    if cleaned.get("assign_role"):
        roles_services.assign_role(
            incident=incident, role=cleaned["assign_role"], holder=cleaned.get("role_holder"), by=by
        )
    if cleaned.get("add_responder"):
        roles_services.add_responder(incident=incident, user=cleaned["add_responder"], by=by)
    if cleaned.get("attach_runbook"):
        checklist_services.attach_runbook(incident=incident, runbook=cleaned["attach_runbook"], by=by)
    if cleaned.get("new_status"):
        status_services.change_status(
            incident=incident,
            to=cleaned["new_status"],
            by=by,
            note=cleaned.get("status_note", ""),
            override_reason=cleaned.get("override_reason", ""),
        )
