"""The post-mortem pages, action items and the metrics page. Views parse, call postmortems.services and render.

Errors: a DomainError becomes an error on the form field it names (400, or 422 for htmx); PermissionDenied is a
403 page; a post-mortem of an incident the user may not see is a 404, like the incident itself.
"""

from __future__ import annotations

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from incidents import access
from incidents.errors import DomainError, PermissionDenied
from incidents.interface import apply_domain_error, error_status, forbidden
from incidents.markdown import render_markdown

from . import selectors
from .emails import render_report_html, report_recipients
from .forms import (
    ActionItemForm,
    ActionItemStatusForm,
    ContentForm,
    MeetingForm,
    StatusForm,
    TimelineItemForm,
)
from .models import MARKDOWN_SECTIONS, ActionItem, ActionItemStatus, PostMortem, PostMortemStatus
from .report import build_report, report_markdown
from .services import action_items as action_items_services
from .services import rules as rules_services
from .services.editing import add_timeline_item, schedule_meeting, update_content, update_timeline
from .services.publishing import change_postmortem_status, resend_report

DETAIL = "postmortems/detail.html"
ACTION_LABELS = {
    PostMortemStatus.DRAFT: "Back to draft",
    PostMortemStatus.IN_REVIEW: "Send for review",
    PostMortemStatus.PUBLISHED: "Publish and email the report",
}


# --- helpers ----------------------------------------------------------------------------------------------

# Where the "Not allowed" page of this area links back to.
BACK = {"back": "postmortems:list", "back_label": "Back to the post-mortems"}


def _postmortem_or_404(request, pk: int) -> PostMortem:
    try:
        return selectors.postmortem_for_page(pk=pk, user=request.user)
    except PostMortem.DoesNotExist:
        raise Http404("No such post-mortem.")


def _item_or_404(request, pk: int) -> ActionItem:
    try:
        return selectors.action_item_for_page(pk=pk, user=request.user)
    except ActionItem.DoesNotExist:
        raise Http404("No such action item.")


def _detail_context(request, postmortem: PostMortem, **forms) -> dict:
    report = build_report(postmortem.pk, queryset=PostMortem.objects.filter(pk=postmortem.pk))
    postmortem = report.postmortem
    can_edit = rules_services.can_edit(request.user, postmortem) and postmortem.is_editable
    transitions = [
        {"value": status.value, "label": ACTION_LABELS[status]}
        for status in postmortem.allowed_transitions()
        if status != PostMortemStatus.PUBLISHED or rules_services.can_publish(request.user, postmortem)
    ]
    attendees = list(postmortem.attendees.all())
    meeting_initial = {
        "meeting_at": timezone.localtime(postmortem.meeting_at) if postmortem.meeting_at else None,
        "location": postmortem.meeting_location,
        "attendees": [user.pk for user in attendees],
    }
    return {
        "postmortem": postmortem,
        "incident": postmortem.incident,
        "report": report,
        "attendees": attendees,
        "action_items": report.action_items,
        "can_edit": can_edit,
        "can_respond": access.can_respond(request.user),
        "can_publish": rules_services.can_publish(request.user, postmortem),
        "transitions": transitions,
        "meeting_form": forms.get("meeting_form") or MeetingForm(initial=meeting_initial),
        "action_item_form": forms.get("action_item_form") or ActionItemForm(),
        "status_form": forms.get("status_form") or StatusForm(),
        "item_status_choices": ActionItemStatus.choices,
        "recipients": report_recipients(postmortem) if postmortem.is_published else [],
        "action_error": forms.get("action_error", ""),
    }


def _render_detail(request, postmortem, *, status=200, **forms):
    return render(request, DETAIL, _detail_context(request, postmortem, **forms), status=status)


# --- list and detail ---------------------------------------------------------------------------------------


@login_required
@require_GET
def postmortem_list(request):
    status = request.GET.get("status", "")
    status = status if status in PostMortemStatus.values else ""
    return render(
        request,
        "postmortems/list.html",
        {
            "postmortems": selectors.postmortem_list(user=request.user, status=status),
            "status": status,
            "statuses": PostMortemStatus.choices,
            "is_manager": access.is_manager(request.user),
            "now": timezone.now(),
        },
    )


@login_required
@require_GET
def for_incident(request, reference: str):
    try:
        postmortem = selectors.postmortem_of_incident(reference=reference, user=request.user)
    except PostMortem.DoesNotExist:
        raise Http404("This incident has no post-mortem (it is drafted when the incident is resolved).")
    return redirect(postmortem.get_absolute_url())


@login_required
@require_GET
def detail(request, pk: int):
    return _render_detail(request, _postmortem_or_404(request, pk))


@login_required
@require_GET
def download_markdown(request, pk: int):
    postmortem = _postmortem_or_404(request, pk)
    report = build_report(postmortem.pk)
    response = HttpResponse(report_markdown(report), content_type="text/markdown; charset=utf-8")
    filename = f"postmortem-{postmortem.incident.reference.lower()}-{slugify(postmortem.incident.title)[:40]}.md"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_GET
@csp_update({"style-src": [UNSAFE_INLINE]})
def email_preview(request, pk: int):
    """The report exactly as the email's HTML part renders it (inlined CSS), to check before publishing. Style
    attributes are allowed on this one response: the email has no scripts and its Markdown is sanitised."""
    postmortem = _postmortem_or_404(request, pk)
    return HttpResponse(render_report_html(build_report(postmortem.pk)))


# --- editing -----------------------------------------------------------------------------------------------


@login_required
def edit(request, pk: int):
    postmortem = _postmortem_or_404(request, pk)
    if not rules_services.can_edit(request.user, postmortem):
        return forbidden(request, "You need the responder role to edit post-mortems.", **BACK)
    if not postmortem.is_editable:
        messages.warning(request, "The post-mortem is published; its content is final.")
        return redirect(postmortem.get_absolute_url())
    form = ContentForm(request.POST or None, initial=ContentForm.initial_from(postmortem))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                update_content(postmortem=postmortem, by=request.user, **form.cleaned_data)
            except PermissionDenied as error:
                return forbidden(request, error.message, **BACK)
            except DomainError as error:
                apply_domain_error(form, error)
            else:
                messages.success(request, "Post-mortem saved.")
                return redirect(postmortem.get_absolute_url())
        status = 400
    sections = [(form[name], heading) for name, heading in MARKDOWN_SECTIONS]
    previews = {name: render_markdown(form[name].value() or "") for name, _ in MARKDOWN_SECTIONS}
    return render(
        request,
        "postmortems/edit.html",
        {
            "postmortem": postmortem,
            "form": form,
            "sections": [(field, heading, previews[field.name]) for field, heading in sections],
        },
        status=status,
    )


@login_required
@require_POST
def preview(request, pk: int):
    """Live preview (htmx): the posted section's Markdown, rendered and sanitised exactly as the report will."""
    _postmortem_or_404(request, pk)
    names = {name for name, _ in MARKDOWN_SECTIONS}
    # ?field= names the section when the whole form is posted (htmx sends the enclosing form's values).
    field = request.GET.get("field") or next((key for key in request.POST if key in names), None)
    if field not in names:
        return HttpResponse("Post one of the sections to preview.", status=400, content_type="text/plain")
    text = request.POST.get(field, "")[:20000]
    return render(request, "postmortems/partials/preview.html", {"html": render_markdown(text)})


@login_required
def timeline(request, pk: int):
    postmortem = _postmortem_or_404(request, pk)
    if not rules_services.can_edit(request.user, postmortem):
        return forbidden(request, "You need the responder role to edit post-mortems.", **BACK)
    error, status = "", 200
    if request.method == "POST":
        texts = {key[5:]: value for key, value in request.POST.items() if key.startswith("text-")}
        try:
            update_timeline(
                postmortem=postmortem, by=request.user, include=request.POST.getlist("include"), texts=texts
            )
        except PermissionDenied as exc:
            return forbidden(request, exc.message, **BACK)
        except DomainError as exc:
            error, status = exc.message, 400
        else:
            messages.success(request, "Timeline saved.")
            return redirect(postmortem.get_absolute_url() + "#timeline")
    return _render_timeline(request, postmortem, TimelineItemForm(), error=error, status=status)


def _render_timeline(request, postmortem, add_form, *, error="", status=200):
    return render(
        request,
        "postmortems/timeline.html",
        {
            "postmortem": postmortem,
            "lines": selectors.timeline_lines(postmortem=postmortem),
            "add_form": add_form,
            "error": error,
        },
        status=status,
    )


@login_required
@require_POST
def timeline_add(request, pk: int):
    postmortem = _postmortem_or_404(request, pk)
    form = TimelineItemForm(request.POST)
    if form.is_valid():
        try:
            add_timeline_item(postmortem=postmortem, by=request.user, **form.cleaned_data)
        except PermissionDenied as error:
            return forbidden(request, error.message, **BACK)
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, "Timeline line added.")
            return redirect("postmortems:timeline", pk=postmortem.pk)
    return _render_timeline(request, postmortem, form, status=400)


@login_required
@require_POST
def schedule(request, pk: int):
    postmortem = _postmortem_or_404(request, pk)
    form = MeetingForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            schedule_meeting(
                postmortem=postmortem,
                by=request.user,
                meeting_at=data["meeting_at"],
                attendees=data["attendees"],
                location=data["location"],
            )
        except PermissionDenied as error:
            return forbidden(request, error.message, **BACK)
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, "Post-mortem meeting scheduled.")
            return redirect(postmortem.get_absolute_url() + "#meeting")
    return _render_detail(request, postmortem, status=error_status(request), meeting_form=form)


@login_required
@require_POST
def change_status(request, pk: int):
    postmortem = _postmortem_or_404(request, pk)
    form = StatusForm(request.POST)
    if form.is_valid():
        try:
            postmortem = change_postmortem_status(
                postmortem=postmortem, to=form.cleaned_data["status"], by=request.user
            )
        except PermissionDenied as error:
            return forbidden(request, error.message, **BACK)
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            note = " The report is being emailed." if postmortem.is_published else ""
            messages.success(request, f"Post-mortem is now {postmortem.get_status_display()}.{note}")
            return redirect(postmortem.get_absolute_url())
    return _render_detail(request, postmortem, status=error_status(request), status_form=form)


@login_required
@require_POST
def resend(request, pk: int):
    postmortem = _postmortem_or_404(request, pk)
    try:
        resend_report(postmortem=postmortem, by=request.user)
    except PermissionDenied as error:
        return forbidden(request, error.message, **BACK)
    except DomainError as error:
        return _render_detail(request, postmortem, status=error_status(request), action_error=error.message)
    messages.success(request, "The report is being emailed again.")
    return redirect(postmortem.get_absolute_url())


# --- action items ------------------------------------------------------------------------------------------


@login_required
@require_POST
def add_action_item(request, pk: int):
    postmortem = _postmortem_or_404(request, pk)
    form = ActionItemForm(request.POST)
    if form.is_valid():
        try:
            action_items_services.add_action_item(postmortem=postmortem, by=request.user, **form.cleaned_data)
        except PermissionDenied as error:
            return forbidden(request, error.message, **BACK)
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, "Action item added.")
            return redirect(postmortem.get_absolute_url() + "#action-items")
    return _render_detail(request, postmortem, status=error_status(request), action_item_form=form)


@login_required
def edit_action_item(request, item_id: int):
    item = _item_or_404(request, item_id)
    initial = {
        "title": item.title,
        "description": item.description,
        "owner": item.owner_id,
        "due_date": item.due_date,
        "priority": item.priority,
        "kind": item.kind,
    }
    form = ActionItemForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                action_items_services.update_action_item(item=item, by=request.user, **form.cleaned_data)
            except PermissionDenied as error:
                return forbidden(request, error.message, **BACK)
            except DomainError as error:
                apply_domain_error(form, error)
            else:
                messages.success(request, "Action item saved.")
                return redirect(item.get_absolute_url())
        status = 400
    return render(request, "postmortems/action_item_form.html", {"item": item, "form": form}, status=status)


@login_required
@require_POST
def action_item_status(request, item_id: int):
    item = _item_or_404(request, item_id)
    form = ActionItemStatusForm(request.POST)
    if not form.is_valid():
        message = "; ".join(form.errors.get("status", ["Choose a status."]))
        if request.htmx:
            return HttpResponse(message, status=422, content_type="text/plain")
        messages.error(request, f"Action item not changed: {message}")
        return redirect(_next_url(request, item))
    try:
        item = action_items_services.change_action_item_status(
            item=item, to=form.cleaned_data["status"], by=request.user
        )
    except PermissionDenied as error:
        return forbidden(request, error.message, **BACK)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect(_next_url(request, item))
    if request.htmx:
        return render(
            request,
            "postmortems/partials/action_item_row.html",
            {
                "item": item,
                "item_status_choices": ActionItemStatus.choices,
                "can_respond": True,
                "show_incident": request.POST.get("context") == "mine",
                "next": request.POST.get("next", ""),
            },
        )
    messages.success(request, f"“{item.title}” is now {item.get_status_display()}.")
    return redirect(_next_url(request, item))


def _next_url(request, item: ActionItem) -> str:
    # Only our own paths: an absolute or scheme-relative "next" would be an open redirect.
    target = request.POST.get("next", "")
    if target.startswith("/") and not target.startswith("//"):
        return target
    return item.get_absolute_url()


@login_required
@require_GET
def my_action_items(request):
    show = request.GET.get("show", "open")
    items = selectors.my_action_items(user=request.user, include_closed=show == "all")
    return render(
        request,
        "postmortems/my_action_items.html",
        {
            "items": items,
            "show": "all" if show == "all" else "open",
            "item_status_choices": ActionItemStatus.choices,
            "today": timezone.localdate(),
        },
    )


@login_required
@require_GET
def overdue_action_items(request):
    if not access.is_manager(request.user):
        return forbidden(request, "The overdue list is for incident managers.", **BACK)
    return render(
        request,
        "postmortems/overdue.html",
        {"items": selectors.overdue_action_items(user=request.user), "today": timezone.localdate()},
    )
