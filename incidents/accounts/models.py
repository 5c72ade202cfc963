from django.conf import settings
from django.db import models


class SsoIdentity(models.Model):
    """The account at the identity provider that signs in as this user: the provider's (issuer, sub) pair, which
    never changes, rather than the e-mail address, which a provider may let its users edit."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "SSO identity"
        verbose_name_plural = "SSO identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_subject")]

    def __str__(self):
        return f"{self.subject} at {self.issuer}"
