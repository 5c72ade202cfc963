"""Forms of the post-mortem pages: they parse and validate input; the rules live in postmortems.services."""

from __future__ import annotations

from datetime import date, timedelta

from django import forms

from incidents.profiles.forms import LocalTimesMixin

from .metrics import MAX_PERIOD_DAYS, default_period
from .models import (
    MARKDOWN_SECTIONS,
    ActionItemPriority,
    ActionItemStatus,
    ActionItemType,
    PostMortem,
    PostMortemStatus,
)
from .selectors import people_to_choose

MARKDOWN_HELP = "Markdown: **bold**, _italic_, lists with -, links. Rendered safely."


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.get_full_name() or obj.get_username()


class PeopleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return obj.get_full_name() or obj.get_username()


class ContentForm(forms.Form):
    """The guide's template sections plus the impact figures."""

    title = forms.CharField(max_length=200)
    users_affected = forms.CharField(max_length=100, required=False, help_text="e.g. 30% or 1,200 customers.")
    revenue_impact = forms.CharField(max_length=100, required=False, help_text="e.g. $4,000, or none.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, heading in MARKDOWN_SECTIONS:
            self.fields[name] = forms.CharField(
                label=heading,
                required=False,
                max_length=20000,
                help_text=MARKDOWN_HELP,
                widget=forms.Textarea(attrs={"rows": 7, "class": "markdown-input"}),
            )

    @classmethod
    def initial_from(cls, postmortem: PostMortem) -> dict:
        names = ["title", "users_affected", "revenue_impact"] + [name for name, _ in MARKDOWN_SECTIONS]
        return {name: getattr(postmortem, name) for name in names}


class MeetingForm(LocalTimesMixin, forms.Form):
    meeting_at = forms.DateTimeField(
        label="Meeting time",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )
    location = forms.CharField(max_length=200, required=False, label="Room or call link")
    attendees = PeopleChoiceField(
        queryset=people_to_choose(),
        required=False,
        help_text="The Incident Commander, Technical Lead, responders and stakeholders.",
        widget=forms.SelectMultiple(attrs={"size": 8}),
    )


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=PostMortemStatus.choices)


class TimelineItemForm(LocalTimesMixin, forms.Form):
    occurred_at = forms.DateTimeField(
        label="When",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )
    text = forms.CharField(max_length=500, label="What happened")


class ActionItemForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text=MARKDOWN_HELP)
    owner = PersonChoiceField(queryset=people_to_choose())
    due_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    priority = forms.ChoiceField(choices=ActionItemPriority.choices, initial=ActionItemPriority.MEDIUM)
    kind = forms.ChoiceField(label="Type", choices=ActionItemType.choices, initial=ActionItemType.PREVENT)
    # The due date's bounds are services.check_due_date's (through add/update_action_item): an overdue item keeps
    # its date when it is edited, which only the service, comparing with the stored date, can tell.


class ActionItemStatusForm(forms.Form):
    status = forms.ChoiceField(choices=ActionItemStatus.choices)


class PeriodForm(forms.Form):
    """The metrics period: two dates, the end included; defaults to the last 90 days."""

    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        # Range first: date arithmetic on year 1 or 9999 overflows.
        for name in ("start", "end"):
            value = data.get(name)
            if value and not date(2000, 1, 1) <= value <= date(2100, 1, 1):
                self.add_error(name, "Choose a date between 2000 and 2100.")
                return data
        default_start, default_end = default_period()
        start = data.get("start") or (data["end"] - timedelta(days=89) if data.get("end") else default_start)
        end = data.get("end") or default_end
        if start > end:
            raise forms.ValidationError("The start date must be on or before the end date.")
        if (end - start).days > MAX_PERIOD_DAYS:
            raise forms.ValidationError(f"Choose a period of at most {MAX_PERIOD_DAYS} days.")
        data["start"], data["end"] = start, end
        return data
