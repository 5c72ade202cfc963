"""Browser forms of the on-call area. They parse input; the rules live in oncall.services and the models."""

from __future__ import annotations

from datetime import UTC, date, datetime

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from .models import ContactMethod, NotificationRule, Person, Rotation, Slot, Team


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class OverrideForm(forms.Form):
    """Create an override. Times are wall-clock times in the rotation's time zone, as its handoffs are."""

    rotation = forms.ModelChoiceField(queryset=Rotation.objects.none())
    slot = forms.ChoiceField(choices=Slot.choices, initial=Slot.PRIMARY)
    person = forms.ModelChoiceField(queryset=Person.objects.none(), help_text="Who covers the slot.")
    start = forms.DateTimeField(widget=LocalDateTimeInput(), help_text="In the rotation's time zone.")
    end = forms.DateTimeField(widget=LocalDateTimeInput(), help_text="In the rotation's time zone.")
    reason = forms.CharField(max_length=200, required=False, help_text="e.g. vacation, shift swap.")

    def __init__(self, *args, rotations, people, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rotation"].queryset = rotations
        self.fields["person"].queryset = people
        self.fields["rotation"].label_from_instance = lambda r: f"{r} ({r.timezone})"

    def clean(self):
        cleaned = super().clean()
        rotation = cleaned.get("rotation")
        for name in ("start", "end"):
            value = cleaned.get(name)
            if rotation is not None and isinstance(value, datetime):
                # The field read the digits in the server's zone; keep the digits, use the rotation's zone.
                local = timezone.make_naive(value).replace(tzinfo=rotation.zone)
                # A wall-clock time skipped by a daylight-saving jump does not exist; say so instead of guessing.
                try:
                    round_trip = local.astimezone(UTC).astimezone(rotation.zone).replace(tzinfo=None)
                except (OverflowError, ValueError):
                    self.add_error(name, "Give a date between the years 1900 and 9998.")
                    cleaned.pop(name, None)
                    continue
                if round_trip != local.replace(tzinfo=None):
                    self.add_error(
                        name, f"{local:%Y-%m-%d %H:%M} does not exist in {rotation.timezone} (the clocks jump forward)."
                    )
                    cleaned.pop(name, None)
                    continue
                cleaned[name] = local
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end <= start:
            self.add_error("end", "The override must end after it starts.")
        return cleaned


class CalendarWeeksForm(forms.Form):
    """Query parameters of the rotation calendar page."""

    # Bounded so start +/- 12 weeks and the shift maths in any zone stay inside Python's and PostgreSQL's dates.
    start = forms.DateField(
        required=False,
        validators=[MinValueValidator(date(1900, 1, 1)), MaxValueValidator(date(9998, 12, 31))],
    )
    weeks = forms.IntegerField(required=False, min_value=1, max_value=12)


class ContactMethodForm(forms.Form):
    """A new contact method on "My notification rules"; the model validates the address (E.164, email, Apprise)."""

    channel = forms.ChoiceField(choices=ContactMethod.Channel.choices)
    address = forms.CharField(
        max_length=500,
        required=False,
        help_text="Phone in E.164 (+15550001), an email address, or an Apprise URL (ntfy://ntfy.sh/topic). "
        "Empty: your directory email, phone or chat handle.",
    )


class NotificationRuleForm(forms.Form):
    """ "N minutes after I am paged, notify me by METHOD"."""

    delay_minutes = forms.IntegerField(
        min_value=0, max_value=NotificationRule.MAX_DELAY_MINUTES, initial=0, label="Minutes after I am paged"
    )
    contact_method = forms.ModelChoiceField(queryset=ContactMethod.objects.none(), label="Notify me by")

    def __init__(self, *args, person: Person, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contact_method"].queryset = ContactMethod.objects.filter(person=person, is_active=True)


class AddRespondersForm(forms.Form):
    """Page another team (through its escalation policy) or one person, with a message."""

    team = forms.ModelChoiceField(queryset=Team.objects.order_by("name"), required=False, empty_label="— no team —")
    person = forms.ModelChoiceField(
        queryset=Person.objects.filter(is_active=True).order_by("name"), required=False, empty_label="— nobody —"
    )
    message = forms.CharField(max_length=1000, required=False, widget=forms.TextInput())

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("team")) == bool(cleaned.get("person")):
            raise forms.ValidationError("Choose a team or a person to page (one of them).")
        return cleaned
