"""The on-call directory: people (contacts) and teams. Rotations, overrides, vendors, hotlines and
escalation policies build on these."""

from django.conf import settings
from django.db import models


class Person(models.Model):
    """A contact who can be paged. Usually linked to a portal user; a vendor's engineer need not be."""

    name = models.CharField(max_length=120)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="person"
    )
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +15550001.")
    chat_handle = models.CharField(max_length=80, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Berlin.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "people"

    def __str__(self):
        return self.name


class Team(models.Model):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(Person, blank=True, related_name="teams")
    team_lead = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="teams_led")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
