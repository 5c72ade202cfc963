"""The append-only audit trail and evidence exports.

Rows are only ever inserted. The application refuses to update or delete them (save/delete/queryset methods
raise), and so does the database itself: migration 0002 installs BEFORE UPDATE OR DELETE triggers that raise.
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove an audit row (the database trigger raises too)."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; they cannot be updated.")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; they cannot be deleted.")

    _raw_delete = delete


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only; they cannot be deleted.")


class AuditAction(models.TextChoices):
    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    DELETED = "deleted", "Deleted"
    RELATED_ADDED = "related_added", "Relation added"
    RELATED_REMOVED = "related_removed", "Relation removed"
    RELATED_CLEARED = "related_cleared", "Relations cleared"
    EVIDENCE_EXPORTED = "evidence_exported", "Evidence exported"


class AuditRecord(AppendOnlyModel):
    """Who changed what, when, with the values before and after.

    The actor is a user FK without a database constraint (deleting a user must not touch audit rows, which
    an ON DELETE SET NULL would do) plus a username snapshot that survives the user. The incident is kept as
    a plain id for the same reason, so the trail of a deleted incident stays intact and exportable.
    """

    occurred_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True, help_text="Snapshot; empty for the portal itself.")
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    object_type = models.CharField(max_length=100, help_text="app_label.model, e.g. incidents.incident.")
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    field = models.CharField(max_length=100, blank=True, help_text="The relation, for many-to-many changes.")
    incident_id = models.BigIntegerField(null=True, blank=True, help_text="The incident this change belongs to.")
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    source = models.CharField(max_length=20, blank=True, help_text="web, api, task, admin, system ...")
    request_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        # Nobody gets add/change/delete permissions: there is nothing to grant.
        default_permissions = ("view",)
        indexes = [
            models.Index(fields=["-occurred_at", "-id"], name="audit_occurred_idx"),
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["incident_id", "id"], name="audit_incident_idx"),
            models.Index(fields=["actor", "-occurred_at"], name="audit_actor_idx"),
        ]

    def __str__(self):
        who = self.actor_username or "the portal"
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.object_type} {self.object_id}"

    @property
    def actor_display(self) -> str:
        return self.actor_username or "the portal"

    @property
    def changed_fields(self) -> list[str]:
        keys = set(self.before or {}) | set(self.after or {})
        return sorted(keys)


class EvidenceExport(AppendOnlyModel):
    """An evidence bundle as it was handed out: the zip, and the SHA-256 of its manifest.

    Kept so the exact bytes can be downloaded again and compared later; append-only like the audit trail.
    """

    incident_id = models.BigIntegerField()
    incident_reference = models.CharField(max_length=20)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    created_by_username = models.CharField(max_length=150, blank=True)
    manifest_sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveIntegerField()
    content = models.BinaryField()

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        indexes = [models.Index(fields=["incident_id", "-created_at"], name="evidence_incident_idx")]

    def __str__(self):
        return f"{self.incident_reference} evidence {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def filename(self) -> str:
        return f"{self.incident_reference}-evidence-{self.created_at:%Y%m%dT%H%M%SZ}.zip"
