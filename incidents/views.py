from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from . import selectors


@login_required
def dashboard(request):
    incidents = selectors.active_incidents(user=request.user)
    return render(request, "incidents/dashboard.html", {"incidents": incidents})
