"""Forms of the responder pages. They parse and label input; the rules live in incidents.services, whose
DomainError is turned back into an error on the field it names (see views._apply_domain_error)."""

import datetime as dt

from django import forms
from django.utils import timezone

from . import selectors
from .models import (
    STATUS_MEANINGS,
    UPDATE_STATUSES_BY_KIND,
    DetectionSource,
    EntryKind,
    Role,
    Runbook,
    Service,
    SeverityPolicy,
    Status,
    UpdateKind,
)
from .profiles.forms import LocalTimesMixin
from .statuspage.models import ServiceState
from .statuspage.services import default_component_state

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format=DATETIME_LOCAL, **kwargs)


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        full = obj.get_full_name()
        return f"{full} ({obj.get_username()})" if full else obj.get_username()


class DeclareForm(LocalTimesMixin, forms.Form):
    title = forms.CharField(max_length=200, help_text="What is broken, in a few words.")
    severity = forms.ModelChoiceField(
        queryset=SeverityPolicy.objects.order_by("rank"), widget=forms.RadioSelect, empty_label=None
    )
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Affected services",
    )
    detection_source = forms.ChoiceField(choices=DetectionSource.choices, initial=DetectionSource.TEAM_MEMBER)
    detected_at = forms.DateTimeField(
        required=False,
        widget=DateTimeLocalInput(),
        label="Detected at",
        help_text="Leave empty for now.",
    )
    impact = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="Who is affected and how."
    )
    users_affected_percent = forms.DecimalField(
        required=False, min_value=0, max_value=100, decimal_places=2, label="Users affected (%)"
    )
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    is_restricted = forms.BooleanField(
        required=False,
        label="Restricted (security incident or data breach)",
        help_text="Only its responders and the security team will see it.",
    )
    runbook = forms.ModelChoiceField(queryset=Runbook.objects.order_by("title"), required=False, label="Runbook")
    incident_commander = UserChoiceField(
        queryset=selectors.responders_to_choose(),
        required=False,
        label="Incident Commander",
        help_text="Leave empty to take the role yourself.",
    )


class DetailsForm(forms.Form):
    """The incident's descriptive details, as the Incident Commander edits them on the incident page."""

    title = forms.CharField(max_length=200)
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    impact = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="Who is affected and how."
    )
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Affected services",
    )

    @classmethod
    def for_incident(cls, incident, data=None):
        initial = {
            "title": incident.title,
            "summary": incident.summary,
            "impact": incident.impact,
            "services": [service.pk for service in incident.services.all()],
        }
        return cls(data, initial=initial, auto_id="id_details_%s")


class NoteForm(LocalTimesMixin, forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Note (Markdown)", max_length=20000)
    kind = forms.ChoiceField(choices=[(EntryKind.NOTE, "Note"), (EntryKind.ACTION, "Action taken")], initial="note")
    occurred_at = forms.DateTimeField(
        required=False,
        widget=DateTimeLocalInput(),
        label="Happened at",
        help_text="Back-date an entry (Scribe, Incident Commander, managers).",
    )


class AcknowledgeForm(forms.Form):
    """No fields: acknowledging twice is a no-op in the service."""


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Status.choices, widget=forms.RadioSelect, label="New status")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    override_reason = forms.CharField(
        required=False, label="Override reason (managers)", help_text="Close with the closure checklist incomplete."
    )
    # The status the page showed when the form was drawn: a stale form is refused rather than acted on.
    current_status = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, incident=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.incident = incident
        if incident is not None:
            allowed = incident.allowed_transitions()
            self.fields["status"].choices = [(s.value, s.label) for s in allowed]
            self.fields["current_status"].initial = incident.status
            self.meanings = [(s.value, s.label, STATUS_MEANINGS[s]) for s in allowed]

    def clean(self):
        cleaned = super().clean()
        seen = cleaned.get("current_status")
        if self.incident is not None and seen and seen != self.incident.status:
            raise forms.ValidationError(
                f"{self.incident.reference} became {self.incident.get_status_display()} while this form was open. "
                "Check the timeline and choose again."
            )
        return cleaned


class SelectOnce(forms.Select):
    """A required <select> without an empty option: Django would fetch the choices a second time only to decide
    whether to print `required`; there is always a selected option, so it is never needed."""

    def use_required_attribute(self, initial):
        return False


class SeverityForm(forms.Form):
    severity = forms.ModelChoiceField(
        queryset=SeverityPolicy.objects.order_by("rank"), empty_label=None, widget=SelectOnce
    )
    reason = forms.CharField(max_length=500, help_text="Why the severity changes (recorded on the timeline).")
    current_severity = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, incident=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.incident = incident
        if incident is not None:
            self.fields["current_severity"].initial = incident.severity.level
            if not self.is_bound:
                self.fields["severity"].initial = incident.severity_id

    def clean(self):
        cleaned = super().clean()
        seen = cleaned.get("current_severity")
        if self.incident is not None and seen and seen != self.incident.severity.level:
            raise forms.ValidationError(
                f"The severity became {self.incident.severity.level} while this form was open. Choose again."
            )
        return cleaned


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    holder = UserChoiceField(queryset=selectors.responders_to_choose(), required=False, label="Person")
    claim = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("claim") and not cleaned.get("holder") and "holder" not in self.errors:
            self.add_error("holder", "Choose who takes the role, or claim it yourself.")
        return cleaned


class ChecklistTickForm(forms.Form):
    checked = forms.BooleanField(required=False)


class AttachRunbookForm(forms.Form):
    runbook = forms.ModelChoiceField(queryset=Runbook.objects.order_by("title"), label="Runbook")


class FiveWhysForm(forms.Form):
    WHY_COUNT = 5

    problem = forms.CharField(max_length=300, label="Problem")
    root_cause = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Root cause")

    def __init__(self, *args, five_whys=None, **kwargs):
        if five_whys is not None and not kwargs.get("initial"):
            initial = {"problem": five_whys.problem, "root_cause": five_whys.root_cause}
            initial.update({f"why_{i + 1}": why for i, why in enumerate(five_whys.whys)})
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        count = max(self.WHY_COUNT, len(five_whys.whys) if five_whys else 0)
        for i in range(1, count + 1):
            self.fields[f"why_{i}"] = forms.CharField(max_length=500, required=False, label=f"Why? ({i})")
        # Keep root cause last in the rendered order.
        self.fields["root_cause"] = self.fields.pop("root_cause")

    def why_fields(self):
        return [self[name] for name in self.fields if name.startswith("why_")]

    def whys(self):
        return [self.cleaned_data.get(name, "") for name in self.fields if name.startswith("why_")]


def _update_status_choices(kind):
    return [(s.value, s.label) for s in UPDATE_STATUSES_BY_KIND[kind]]


class InternalUpdateForm(LocalTimesMixin, forms.Form):
    """The guide's internal update template."""

    status = forms.ChoiceField(choices=_update_status_choices(UpdateKind.INTERNAL))
    what_we_know = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="What we know")
    what_we_are_doing = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, label="What we're doing"
    )
    impact = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Impact")
    eta = forms.CharField(max_length=100, required=False, label="ETA", help_text="If known.")
    next_update_at = forms.DateTimeField(
        required=False, widget=DateTimeLocalInput(), label="Next update", help_text="Empty: one cadence from now."
    )


class ExternalUpdateForm(LocalTimesMixin, forms.Form):
    """The guide's status-page template, plus the public state of each service ("component") it affects: the
    Communications Lead picks each one, prefilled from the incident's latest published states, else from its
    severity for the services it names (operational when resolving)."""

    status = forms.ChoiceField(choices=_update_status_choices(UpdateKind.EXTERNAL))
    title = forms.CharField(max_length=200, required=False, label="Brief issue description")
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, label="Description of the issue and impact"
    )
    workaround = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Workaround")
    next_update_at = forms.DateTimeField(required=False, widget=DateTimeLocalInput(), label="Next update")
    publish = forms.BooleanField(required=False, label="Publish to status page")

    COMPONENT_PREFIX = "component_"

    def __init__(self, *args, incident=None, public_services=(), current_states=None, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "Not affected"), *ServiceState.choices]
        status = self["status"].value() or ""
        default = default_component_state(incident=incident, status=status) if incident is not None else ""
        named = {service.pk for service in incident.services.all()} if incident is not None else set()
        current = current_states or {}
        self.component_names = []
        for service in public_services:
            name = f"{self.COMPONENT_PREFIX}{service.pk}"
            initial = current.get(service.pk) or (default if service.pk in named else "")
            if status == "resolved" and initial:
                initial = ServiceState.OPERATIONAL
            self.fields[name] = forms.ChoiceField(
                choices=choices, required=False, label=service.name, initial=initial, widget=SelectOnce
            )
            self.component_names.append(name)

    def component_fields(self):
        return [self[name] for name in self.component_names]

    def component_states(self) -> dict[int, str]:
        """{service pk: state} for the services given a state (the others are not affected)."""
        return {
            int(name[len(self.COMPONENT_PREFIX) :]): self.cleaned_data[name]
            for name in self.component_names
            if self.cleaned_data.get(name)
        }


class IncidentFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Text or reference")
    severity = forms.MultipleChoiceField(
        required=False,
        choices=[("P0", "P0"), ("P1", "P1"), ("P2", "P2"), ("P3", "P3")],
        widget=forms.CheckboxSelectMultiple,
    )
    status = forms.MultipleChoiceField(required=False, choices=Status.choices, widget=forms.CheckboxSelectMultiple)
    service = forms.ModelChoiceField(
        queryset=Service.objects.order_by("name"), required=False, to_field_name="slug", empty_label="Any service"
    )
    declared_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    declared_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("declared_from"), cleaned.get("declared_to")
        if start and end and end < start:
            self.add_error("declared_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> dict:
        """Dates become an inclusive day range [from 00:00, to+1 00:00) in the current time zone."""
        data = dict(self.cleaned_data)
        tz = timezone.get_current_timezone()
        if data.get("declared_from"):
            data["declared_from"] = dt.datetime.combine(data["declared_from"], dt.time.min, tzinfo=tz)
        if data.get("declared_to"):
            data["declared_to"] = dt.datetime.combine(data["declared_to"], dt.time.min, tzinfo=tz) + dt.timedelta(
                days=1
            )
        return data


__all__ = [
    "AcknowledgeForm",
    "AttachRunbookForm",
    "ChecklistTickForm",
    "DeclareForm",
    "DetailsForm",
    "ExternalUpdateForm",
    "FiveWhysForm",
    "IncidentFilterForm",
    "InternalUpdateForm",
    "NoteForm",
    "RoleForm",
    "SeverityForm",
    "StatusForm",
]
