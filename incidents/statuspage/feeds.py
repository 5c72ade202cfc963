"""Atom feed of published status page updates: the same public data as the page, nothing more."""

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from . import selectors


class StatusUpdatesFeed(Feed):
    feed_type = Atom1Feed
    title = "Status updates"
    subtitle = "Published updates about incidents affecting our public services."
    description_template = "statuspage/feed_item.html"

    def link(self):
        return reverse("statuspage:index")

    def feed_guid(self):
        return f"{settings.SITE_URL}{reverse('statuspage:feed')}"

    def items(self):
        return selectors.feed_updates()

    def item_title(self, update):
        return f"[{update.get_status_display()}] {update.title}"

    def item_link(self, update):
        return f"{reverse('statuspage:index')}#incident-{update.incident.number}"

    def item_guid(self, update):
        return f"{settings.SITE_URL}{reverse('statuspage:index')}#update-{update.pk}"

    item_guid_is_permalink = False

    def item_pubdate(self, update):
        return update.posted_at

    def item_updateddate(self, update):
        return update.posted_at

    def item_categories(self, update):
        return [service.name for service in update.public_affected_services]
