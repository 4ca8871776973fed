"""Identity and tenancy: users, institutions (tenants), roles, API tokens, audit log."""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("email is required")
        user = self.model(email=normalize_email(email), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=normalize_email(username))


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively: store them stripped and lower-cased."""
    return (email or "").strip().lower()


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(_("email"), max_length=254, unique=True)
    full_name = models.CharField(_("full name"), max_length=150, blank=True)
    preferred_language = models.CharField(
        _("language"), max_length=10, default="zh-hans", choices=[("zh-hans", "简体中文"), ("en", "English")]
    )
    is_active = models.BooleanField(_("active"), default=True)
    is_staff = models.BooleanField(_("staff"), default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.full_name or self.email

    @property
    def display_name(self) -> str:
        return self.full_name or self.email


class InstitutionKind(models.TextChoices):
    UNIVERSITY = "university", _("University")
    INSTITUTE = "institute", _("Research institute")
    ENTERPRISE = "enterprise", _("Enterprise")


class Institution(models.Model):
    """The tenant. Nothing of one institution is visible to another."""

    TENANT_FIELD = "id"

    name = models.CharField(_("name"), max_length=200, unique=True)
    code = models.CharField(_("short code"), max_length=32, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=InstitutionKind.choices)
    email_domains = models.JSONField(_("email domains"), default=list, blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=~Q(code=""), name="institution_code_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class InstitutionRole(models.TextChoices):
    RESEARCHER = "researcher", _("Researcher")
    PI = "pi", _("Principal investigator")
    INSTITUTION_ADMIN = "institution_admin", _("Institution admin")


class Membership(models.Model):
    """A user's role inside one institution."""

    TENANT_FIELD = "institution"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=32, choices=InstitutionRole.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["institution_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "institution"], name="membership_unique_user_institution"),
            models.CheckConstraint(
                condition=Q(role__in=[c.value for c in InstitutionRole]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.institution.code}: {self.role}"


class FederationRoleKind(models.TextChoices):
    REVIEWER = "reviewer", _("Reviewer")
    COMMITTEE = "committee", _("Allocation committee")
    SITE_OPERATOR = "site_operator", _("Site operator")
    FEDERATION_ADMIN = "federation_admin", _("Federation admin")


class FederationRole(models.Model):
    """A federation-wide role (not bound to a tenant). Site operators get a site later."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="federation_roles")
    role = models.CharField(_("role"), max_length=32, choices=FederationRoleKind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "role"], name="federation_role_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.role}"


class TokenScope(models.TextChoices):
    READ = "read", _("Read")
    JOBS_SUBMIT = "jobs:submit", _("Submit jobs")
    ALLOCATIONS_WRITE = "allocations:write", _("Write allocation requests")
    ADMIN = "admin", _("Administer the institution")


class ApiToken(models.Model):
    """An institution system's credential. The secret is never stored, only its SHA-256.

    The full token is ``sw_<prefix>_<secret>``; ``prefix`` is unique and used for lookup,
    the secret has 256 bits of entropy, so a fast hash is safe (no dictionary to attack).
    """

    TENANT_FIELD = "institution"

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "name"], name="api_token_unique_name_per_institution"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (sw_{self.prefix}_…)"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active"


class AuditEvent(models.Model):
    """Append-only record of every state change: who, what, which object, before/after."""

    TENANT_FIELD = "institution"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_user = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor_token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor_label = models.CharField(max_length=300)
    ip = models.GenericIPAddressField(null=True, blank=True)
    institution = models.ForeignKey(
        Institution, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_events"
    )
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["institution", "-created_at"], name="audit_institution_time"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_type}#{self.object_id}"
