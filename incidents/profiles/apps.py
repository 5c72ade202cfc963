from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "incidents.profiles"
    label = "profiles"
    verbose_name = "Profiles"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from .services import remember_zone_in_session

        # At log-in, so that no page request pays a query for the user's time zone.
        user_logged_in.connect(remember_zone_in_session, dispatch_uid="profiles.remember_zone", weak=False)
