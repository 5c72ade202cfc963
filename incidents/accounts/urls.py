from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("oidc/authenticate/", views.oidc_authenticate, name="oidc-authenticate"),
    path("oidc/callback/", views.OIDCCallbackView.as_view(), name="oidc-callback"),
    path("two-factor/", views.two_factor_setup, name="two-factor-setup"),
    path("two-factor/verify/", views.two_factor_verify, name="two-factor-verify"),
    path("two-factor/recovery-codes/", views.recovery_codes, name="two-factor-recovery-codes"),
]
