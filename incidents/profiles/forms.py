from django import forms

from .zones import zone_label, zone_names


class TimeZoneForm(forms.Form):
    time_zone = forms.ChoiceField(
        label="Time zone",
        help_text="Every page, form and email to you shows times in this zone, with UTC on hover.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(name, name.replace("_", " ")) for name in zone_names()]


class LocalTimesMixin:
    """Forms that take times say which zone they mean: the reader's (Django reads and shows a DateTimeField in the
    zone active for the request, which incidents.profiles.middleware sets to theirs)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        label = zone_label()
        for field in self.fields.values():
            if isinstance(field, forms.DateTimeField) and not getattr(field, "zone_named", False):
                field.label = f"{field.label} ({label})" if field.label else None
                field.zone_named = True
