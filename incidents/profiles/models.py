from django.conf import settings
from django.db import models

from .zones import validate_zone


class Profile(models.Model):
    """A portal user's own settings. For now the time zone every page, form and email to them uses."""

    class Source(models.TextChoices):
        BROWSER = "browser", "Guessed from the browser"
        USER = "user", "Chosen by the user"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    time_zone = models.CharField(max_length=64, validators=[validate_zone], help_text="IANA name, e.g. Europe/Berlin.")
    time_zone_source = models.CharField(max_length=10, choices=Source.choices, default=Source.USER)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.user} ({self.time_zone})"
