from django import forms

from . import selectors


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
