from django import forms

from incidents.models import Service
from incidents.profiles.forms import LocalTimesMixin

from . import selectors
from .models import ServiceState


class SubscribeForm(forms.Form):
    SCOPE_CHOICES = [("all", "All services"), ("some", "Only the services I choose")]

    email = forms.EmailField(max_length=254, label="Email address")
    scope = forms.ChoiceField(
        choices=SCOPE_CHOICES, initial="all", widget=forms.RadioSelect, label="Send me updates for"
    )
    services = forms.ModelMultipleChoiceField(
        queryset=selectors.public_services().order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Services",
    )
    # Left empty by people; bots that fill every field get the same answer and no email.
    website = forms.CharField(required=False, label="Leave this empty")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("scope") == "some" and not cleaned.get("services"):
            self.add_error("services", "Choose at least one service, or all services.")
        return cleaned

    @property
    def is_bot(self) -> bool:
        return bool(self.cleaned_data.get("website"))


UTC_INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


class UtcDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class MaintenanceForm(LocalTimesMixin, forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(
        required=False, widget=forms.Textarea, help_text="What users will notice. Shown publicly."
    )
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        help_text="Alerts for these services do not declare incidents while the window runs.",
    )
    starts_at = forms.DateTimeField(label="Starts", input_formats=UTC_INPUT_FORMATS, widget=UtcDateTimeInput())
    ends_at = forms.DateTimeField(label="Ends", input_formats=UTC_INPUT_FORMATS, widget=UtcDateTimeInput())

    def clean(self):
        cleaned = super().clean()
        starts_at, ends_at = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", "The maintenance must end after it starts.")
        return cleaned


class OverrideForm(forms.Form):
    state = forms.ChoiceField(choices=ServiceState.choices)
    message = forms.CharField(max_length=300, required=False, help_text="Shown publicly next to the service.")
