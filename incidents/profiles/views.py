"""The user's profile page (time zone) and the browser's one-time guess of it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from incidents.errors import DomainError

from . import services
from .forms import TimeZoneForm
from .zones import zone, zone_label


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    current = services.profile_zone_name(request.user)
    form = TimeZoneForm(request.POST or None, initial={"time_zone": current or timezone.get_current_timezone_name()})
    if request.method == "POST" and form.is_valid():
        try:
            services.set_time_zone(user=request.user, time_zone=form.cleaned_data["time_zone"])
        except DomainError as error:
            form.add_error("time_zone", error.message)
        else:
            request.session[services.SESSION_KEY] = form.cleaned_data["time_zone"]
            messages.success(request, f"Times are now shown in {zone_label(zone(form.cleaned_data['time_zone']))}.")
            return redirect("profiles:profile")
    status = 400 if form.errors else 200
    return render(request, "profiles/profile.html", {"form": form, "current": current}, status=status)


@require_POST
def guess_time_zone(request):
    """POST time_zone=<the browser's Intl zone>: stored only if the user has none yet."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Sign in first."}, status=403)
    try:
        profile = services.guess_time_zone(user=request.user, time_zone=request.POST.get("time_zone", ""))
    except DomainError as error:
        return JsonResponse({"field": error.field, "error": error.message}, status=400)
    request.session[services.SESSION_KEY] = profile.time_zone
    return HttpResponse(status=204)
