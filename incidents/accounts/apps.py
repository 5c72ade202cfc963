from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "incidents.accounts"
    label = "accounts"
    verbose_name = "Sign-in"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at the top: AppConfig modules load before the models these modules use.
        from django.contrib.auth.signals import user_logged_in

        from . import checks  # noqa: F401 - registers the system checks
        from .second_factor import note_sign_in

        user_logged_in.connect(note_sign_in, dispatch_uid="accounts.note_sign_in")
