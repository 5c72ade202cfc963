"""Who acts from chat: the portal user of the Person linked to a Slack or Mattermost user, with that user's
permissions and visibility, or NotAllowed saying why not (the caller answers with it, ephemerally)."""

from __future__ import annotations

from incidents import access
from incidents.models import Incident

from .models import ChatIdentity

UNLINKED = (
    "Your Slack account is not linked to anyone in the Incident Portal, so nothing was changed. Ask an "
    "administrator to link it (Admin › Chat identities, or “Link to Slack by email” on your person)."
)


class NotAllowed(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def actor_for(*, slack_user_id: str = "", mattermost_user_id: str = ""):
    """The portal user acting for a chat user, or NotAllowed saying why not."""
    if slack_user_id:
        identity = ChatIdentity.objects.filter(slack_user_id=slack_user_id).select_related("person__user").first()
    else:
        identity = (
            ChatIdentity.objects.filter(mattermost_user_id=mattermost_user_id).select_related("person__user").first()
            if mattermost_user_id
            else None
        )
    if identity is None:
        raise NotAllowed(UNLINKED)
    user = identity.person.user
    if user is None or not user.is_active:
        raise NotAllowed(
            f"Your chat account is linked to {identity.person}, who has no active Incident Portal login, "
            "so nothing was changed."
        )
    if not access.can_respond(user):
        raise NotAllowed("You need the responder role in the Incident Portal to change incidents; nothing was changed.")
    return user


def visible_incident(user, incident_id) -> Incident:
    incident = Incident.objects.visible_to(user).select_related("severity").filter(pk=incident_id).first()
    if incident is None:
        raise NotAllowed("You cannot see that incident in the Incident Portal; nothing was changed.")
    return incident
