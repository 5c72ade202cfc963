"""Post-mortems and action items, from the guide's "Post-Incident Procedures": a post-mortem meeting within
48 hours of resolution, the post-mortem template's sections, and action items with owners and due dates.

State changes go through postmortems.services; these models hold data, constraints and small computed values.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from incidents.models import Incident

# The guide: "Schedule: Within 48 hours of resolution".
MEETING_WITHIN = timedelta(hours=48)


class PostMortemStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    PUBLISHED = "published", "Published"


# Draft -> In review -> Published; a reviewer may send it back to Draft. Published is final.
POSTMORTEM_TRANSITIONS = {
    PostMortemStatus.DRAFT: {PostMortemStatus.IN_REVIEW},
    PostMortemStatus.IN_REVIEW: {PostMortemStatus.DRAFT, PostMortemStatus.PUBLISHED},
    PostMortemStatus.PUBLISHED: set(),
}

# The guide's post-mortem template, in order: (field, heading).
SECTIONS = [
    ("summary", "Incident Summary"),
    ("impact", "Impact"),
    ("timeline", "Timeline"),
    ("root_cause", "Root Cause"),
    ("what_went_well", "What Went Well"),
    ("what_could_be_improved", "What Could Be Improved"),
    ("action_items", "Action Items"),
    ("lessons_learned", "Lessons Learned"),
]
# Sections written as Markdown on the post-mortem row (timeline and action items are rows of their own).
MARKDOWN_SECTIONS = [(field, heading) for field, heading in SECTIONS if field not in {"timeline", "action_items"}]


class PostMortemQuerySet(models.QuerySet):
    def visible_to(self, user) -> PostMortemQuerySet:
        """A post-mortem is visible exactly when its incident is (restricted incidents stay restricted)."""
        return self.filter(incident__in=Incident.objects.visible_to(user).values("pk"))


class PostMortem(models.Model):
    incident = models.OneToOneField("incidents.Incident", on_delete=models.CASCADE, related_name="postmortem")
    status = models.CharField(max_length=12, choices=PostMortemStatus.choices, default=PostMortemStatus.DRAFT)
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_postmortems",
        help_text="Writes the post-mortem; the Incident Commander by default.",
    )
    due_at = models.DateTimeField(help_text="The meeting is due by then: 48 hours after resolution.")
    meeting_at = models.DateTimeField(null=True, blank=True)
    meeting_location = models.CharField(max_length=200, blank=True, help_text="Room or video-call link.")
    attendees = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="postmortem_meetings")

    # The guide's template, as Markdown (drafted from the incident, then edited).
    summary = models.TextField(blank=True)
    impact = models.TextField(blank=True)
    users_affected = models.CharField(max_length=100, blank=True, help_text="e.g. 30% or 1,200 customers.")
    revenue_impact = models.CharField(max_length=100, blank=True, help_text="e.g. $4,000 or none.")
    root_cause = models.TextField(blank=True)
    # The incident's five whys as they were when the post-mortem was published; until then the report shows the
    # incident's current ones (they are often finished after resolution).
    five_whys = models.JSONField(null=True, blank=True, editable=False)
    what_went_well = models.TextField(blank=True)
    what_could_be_improved = models.TextField(blank=True)
    lessons_learned = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    report_sent_at = models.DateTimeField(null=True, blank=True, help_text="When the report was last emailed.")
    # The IC is reminded once when no meeting is scheduled by due_at.
    schedule_reminded_at = models.DateTimeField(null=True, blank=True)

    objects = PostMortemQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=Q(meeting_at__isnull=True, schedule_reminded_at__isnull=True),
                name="pm_unscheduled_due_idx",
            ),
            models.Index(fields=["status", "-created_at"], name="pm_status_idx"),
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("postmortems:detail", kwargs={"pk": self.pk})

    @property
    def is_published(self) -> bool:
        return self.status == PostMortemStatus.PUBLISHED

    @property
    def is_editable(self) -> bool:
        return self.status != PostMortemStatus.PUBLISHED

    @property
    def is_meeting_overdue(self) -> bool:
        return self.meeting_at is None and timezone.now() > self.due_at

    def allowed_transitions(self) -> list[PostMortemStatus]:
        order = list(PostMortemStatus)
        return sorted(POSTMORTEM_TRANSITIONS[PostMortemStatus(self.status)], key=order.index)


class PostMortemTimelineItem(models.Model):
    """One line of the post-mortem's timeline, copied from an incident timeline entry (key events included
    by default) or added by hand; the text is editable without touching the incident's own record."""

    postmortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="timeline_items")
    entry = models.ForeignKey(
        "incidents.TimelineEntry", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    occurred_at = models.DateTimeField()
    text = models.CharField(max_length=500, help_text="Markdown (inline).")
    text_html = models.TextField(
        blank=True, editable=False, help_text="Sanitised HTML rendered from text when written (reports stay fast)."
    )
    is_included = models.BooleanField(default=False)

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["postmortem", "occurred_at"], name="pm_timeline_idx")]
        constraints = [
            models.UniqueConstraint(fields=["postmortem", "entry"], name="pm_timeline_unique_entry"),
        ]

    def __str__(self):
        return f"{self.occurred_at:%H:%M} - {self.text}"


class ActionItemPriority(models.TextChoices):
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class ActionItemType(models.TextChoices):
    PREVENT = "prevent", "Prevent"
    DETECT = "detect", "Detect"
    MITIGATE = "mitigate", "Mitigate"
    PROCESS = "process", "Process"


class ActionItemStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    WONT_DO = "wont_do", "Won't do"


OPEN_ACTION_STATUSES = (ActionItemStatus.OPEN, ActionItemStatus.IN_PROGRESS)


class ActionItemQuerySet(models.QuerySet):
    def visible_to(self, user) -> ActionItemQuerySet:
        return self.filter(incident__in=Incident.objects.visible_to(user).values("pk"))

    def still_open(self) -> ActionItemQuerySet:
        return self.filter(status__in=OPEN_ACTION_STATUSES)

    def overdue(self, today=None) -> ActionItemQuerySet:
        today = today or timezone.localdate()
        return self.still_open().filter(due_date__lt=today)


class ActionItem(models.Model):
    postmortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="action_items")
    # Denormalised from the post-mortem so lists filter and check visibility without a join through it.
    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="action_items")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Markdown.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="action_items", help_text="Who does it."
    )
    owner_person = models.ForeignKey(
        "oncall.Person",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="action_items",
        help_text="The owner's on-call contact, when they have one.",
    )
    due_date = models.DateField()
    priority = models.CharField(max_length=8, choices=ActionItemPriority.choices, default=ActionItemPriority.MEDIUM)
    kind = models.CharField("type", max_length=10, choices=ActionItemType.choices, default=ActionItemType.PREVENT)
    status = models.CharField(max_length=12, choices=ActionItemStatus.choices, default=ActionItemStatus.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    # Each reminder fires once: the tick stamps these in the same transaction that queues the email.
    reminded_before_at = models.DateTimeField(null=True, blank=True)
    reminded_overdue_at = models.DateTimeField(null=True, blank=True)

    objects = ActionItemQuerySet.as_manager()

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [
            models.Index(fields=["owner", "status", "due_date"], name="action_owner_idx"),
            models.Index(fields=["status", "due_date"], name="action_status_due_idx"),
            models.Index(
                fields=["due_date"],
                condition=Q(status__in=["open", "in_progress"], reminded_before_at__isnull=True),
                name="action_remind_before_idx",
            ),
            models.Index(
                fields=["due_date"],
                condition=Q(status__in=["open", "in_progress"], reminded_overdue_at__isnull=True),
                name="action_remind_overdue_idx",
            ),
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("postmortems:detail", kwargs={"pk": self.postmortem_id}) + f"#action-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ACTION_STATUSES

    @property
    def is_overdue(self) -> bool:
        return self.is_open and self.due_date < timezone.localdate()
