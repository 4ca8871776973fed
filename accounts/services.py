"""Writes for identity and tenancy. Every function: keyword-only, one transaction, audit row."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.access import get_administered_institution
from accounts.actors import Actor
from accounts.audit import audit_record, snapshot
from accounts.models import (
    ApiToken,
    FederationRole,
    FederationRoleKind,
    Institution,
    InstitutionKind,
    InstitutionRole,
    Membership,
    TokenScope,
    User,
    normalize_email,
)
from portal.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
DOMAIN_RE = re.compile(r"^(?=.{3,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
TOKEN_RE = re.compile(r"^sw_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")
INSTITUTION_FIELDS = ["name", "code", "kind", "email_domains", "active"]


# --- Institutions ------------------------------------------------------------------------
def _clean_institution(name: str, code: str, kind: str, email_domains: list[str]) -> tuple[str, str, list[str]]:
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    code = (code or "").strip().upper()
    if not name or len(name) > 200:
        errors["name"] = ["Name is required, at most 200 characters."]
    if not CODE_RE.match(code):
        errors["code"] = ["2-32 characters: letters, digits and hyphens, starting with a letter or digit."]
    if kind not in InstitutionKind.values:
        errors["kind"] = [f"One of: {', '.join(InstitutionKind.values)}."]
    domains = []
    for raw in email_domains or []:
        domain = str(raw).strip().lower().lstrip("@")
        if not DOMAIN_RE.match(domain):
            errors.setdefault("email_domains", []).append(f"Not a domain name: {raw!r}.")
        elif domain not in domains:
            domains.append(domain)
    if len(domains) > 20:
        errors["email_domains"] = ["At most 20 domains."]
    if errors:
        raise ValidationFailed("Invalid institution.", code="invalid", fields=errors)
    return name, code, domains


def _refuse_duplicate_institution(name: str, code: str, exclude_pk: int | None = None) -> None:
    others = Institution.objects.exclude(pk=exclude_pk)
    if others.filter(code=code).exists():
        raise Conflict(
            f"An institution with code {code} already exists.",
            code="institution_code_taken",
            fields={"code": ["Already taken."]},
        )
    if others.filter(name__iexact=name).exists():
        raise Conflict(
            f"An institution named {name!r} already exists.",
            code="institution_name_taken",
            fields={"name": ["Already taken."]},
        )


@transaction.atomic
def institution_create(
    *, actor: Actor, name: str, code: str, kind: str, email_domains: list[str] | None = None
) -> Institution:
    if not actor.is_federation_admin:
        raise PermissionDenied("Only a federation admin can create institutions.", code="federation_admin_required")
    name, code, domains = _clean_institution(name, code, kind, email_domains or [])
    _refuse_duplicate_institution(name, code)
    try:
        with transaction.atomic():
            institution = Institution.objects.create(name=name, code=code, kind=kind, email_domains=domains)
    except IntegrityError:  # a concurrent create won the race
        raise Conflict(f"An institution with code {code} already exists.", code="institution_code_taken") from None
    audit_record(
        actor=actor,
        action="institution.create",
        obj=institution,
        institution=institution,
        after=snapshot(institution, INSTITUTION_FIELDS),
    )
    return institution


@transaction.atomic
def institution_update(*, actor: Actor, institution: Institution, **changes) -> Institution:
    institution = get_administered_institution(actor, institution.pk)
    institution = Institution.objects.select_for_update().get(pk=institution.pk)
    unknown = set(changes) - set(INSTITUTION_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", code="unknown_field", fields={f: ["Unknown field."] for f in unknown})
    if ({"code", "active"} & set(changes)) and not actor.is_federation_admin:
        raise PermissionDenied(
            "Only a federation admin can change the code or activate/deactivate.", code="federation_admin_required"
        )
    before = snapshot(institution, INSTITUTION_FIELDS)
    name, code, domains = _clean_institution(
        changes.get("name", institution.name),
        changes.get("code", institution.code),
        changes.get("kind", institution.kind),
        changes.get("email_domains", institution.email_domains),
    )
    _refuse_duplicate_institution(name, code, exclude_pk=institution.pk)
    institution.name, institution.code, institution.email_domains = name, code, domains
    institution.kind = changes.get("kind", institution.kind)
    if "active" in changes:
        institution.active = bool(changes["active"])
    institution.save()
    after = snapshot(institution, INSTITUTION_FIELDS)
    if after != before:
        audit_record(
            actor=actor,
            action="institution.update",
            obj=institution,
            institution=institution,
            before=before,
            after=after,
        )
    return institution


# --- Members -----------------------------------------------------------------------------
def _check_role(role: str) -> None:
    if role not in InstitutionRole.values:
        raise ValidationFailed(
            "Unknown role.", code="invalid_role", fields={"role": [f"One of: {', '.join(InstitutionRole.values)}."]}
        )


def _send_invitation(user: User, institution: Institution) -> None:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    base = getattr(settings, "PORTAL_BASE_URL", "http://127.0.0.1:8000")
    link = f"{base}/accounts/reset/{uid}/{token}/"
    send_mail(
        subject=f"[Suanwang] You were added to {institution.name} / 您已加入 {institution.name}",
        message=(
            f"You now have an account on Suanwang (算网) as a member of {institution.name}.\n"
            f"Choose your password here: {link}\n\n"
            f"您已成为 {institution.name} 在算网的成员。请通过以上链接设置密码。\n"
        ),
        from_email=None,
        recipient_list=[user.email],
    )


@transaction.atomic
def member_add(*, actor: Actor, institution: Institution, email: str, role: str, full_name: str = "") -> Membership:
    """Add a person to an institution, creating their account (with an invitation) if new."""
    institution = get_administered_institution(actor, institution.pk)
    _check_role(role)
    email = normalize_email(email)
    full_name = (full_name or "").strip()[:150]
    domain = email.rpartition("@")[2]
    if institution.email_domains and domain not in institution.email_domains and not actor.is_federation_admin:
        raise ValidationFailed(
            f"{email} is not an address of {institution.name} ({', '.join(institution.email_domains)}).",
            code="email_domain_mismatch",
            fields={"email": ["Address outside the institution's domains."]},
        )
    user = User.objects.filter(email=email).first()
    created = user is None
    if created:
        user = User.objects.create_user(email=email, full_name=full_name)
        audit_record(
            actor=actor,
            action="user.create",
            obj=user,
            institution=institution,
            after={"email": email, "full_name": full_name},
        )
    elif Membership.objects.filter(user=user, institution=institution).exists():
        raise Conflict(
            f"{email} is already a member of {institution.code}.",
            code="already_member",
            fields={"email": ["Already a member."]},
        )
    membership = Membership.objects.create(user=user, institution=institution, role=role)
    audit_record(
        actor=actor,
        action="membership.create",
        obj=membership,
        institution=institution,
        after={"user": email, "role": role},
    )
    if created:
        transaction.on_commit(lambda: _send_invitation(user, institution))
    return membership


def _lock_admins(institution: Institution) -> list[int]:
    """Lock the institution's admin memberships in a fixed order (guards the last-admin rule)."""
    return list(
        Membership.objects.select_for_update()
        .filter(institution=institution, role=InstitutionRole.INSTITUTION_ADMIN)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


@transaction.atomic
def member_change_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    institution = get_administered_institution(actor, membership.institution_id)
    _check_role(role)
    admins = _lock_admins(institution)
    membership = Membership.objects.select_for_update(of=("self",)).select_related("user").get(pk=membership.pk)
    if membership.role == role:
        return membership
    if membership.pk in admins and len(admins) == 1:
        raise Conflict("An institution needs at least one admin.", code="last_institution_admin")
    before = {"role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="membership.change_role",
        obj=membership,
        institution=institution,
        before=before,
        after={"role": role},
    )
    return membership


@transaction.atomic
def member_remove(*, actor: Actor, membership: Membership) -> None:
    institution = get_administered_institution(actor, membership.institution_id)
    admins = _lock_admins(institution)
    try:
        membership = Membership.objects.select_for_update(of=("self",)).select_related("user").get(pk=membership.pk)
    except Membership.DoesNotExist:
        raise NotFound("Member not found.", code="membership_not_found") from None
    if membership.pk in admins and len(admins) == 1:
        raise Conflict("An institution needs at least one admin.", code="last_institution_admin")
    audit_record(
        actor=actor,
        action="membership.delete",
        obj=membership,
        institution=institution,
        before={"user": membership.user.email, "role": membership.role},
    )
    membership.delete()


@transaction.atomic
def federation_role_grant(*, actor: Actor, user: User, role: str) -> FederationRole:
    if not actor.is_federation_admin:
        raise PermissionDenied("Only a federation admin can grant federation roles.", code="federation_admin_required")
    if role not in FederationRoleKind.values:
        raise ValidationFailed("Unknown federation role.", code="invalid_role")
    grant, created = FederationRole.objects.get_or_create(user=user, role=role)
    if created:
        audit_record(
            actor=actor,
            action="federation_role.grant",
            obj=grant,
            institution=None,
            after={"user": user.email, "role": role},
        )
    return grant


# --- API tokens --------------------------------------------------------------------------
def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _clean_scopes(scopes: list[str]) -> list[str]:
    cleaned = sorted(set(scopes or []))
    unknown = [s for s in cleaned if s not in TokenScope.values]
    if unknown or not cleaned:
        raise ValidationFailed(
            "Choose at least one known scope.",
            code="invalid_scope",
            fields={"scopes": [f"Known scopes: {', '.join(TokenScope.values)}."]},
        )
    return cleaned


@transaction.atomic
def token_create(
    *, actor: Actor, institution: Institution, name: str, scopes: list[str], expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token; returns it and its plain text, which exists only in this return value."""
    institution = get_administered_institution(actor, institution.pk)
    if actor.is_token:
        raise PermissionDenied(
            "API tokens are created by a person in the portal or an API session.", code="token_cannot_manage_tokens"
        )
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed(
            "Name is required, at most 100 characters.",
            code="invalid",
            fields={"name": ["Required, at most 100 characters."]},
        )
    scopes = _clean_scopes(scopes)
    now = timezone.now()
    max_days = settings.SUANWANG["TOKEN_MAX_LIFETIME_DAYS"]
    if expires_at is not None and (expires_at <= now or expires_at > now + timedelta(days=max_days)):
        raise ValidationFailed(
            f"Expiry must be in the future and within {max_days} days.",
            code="invalid_expiry",
            fields={"expires_at": ["Out of range."]},
        )
    if ApiToken.objects.filter(institution=institution, name=name).exists():
        raise Conflict(
            f"A token named {name!r} already exists.", code="token_name_taken", fields={"name": ["Already taken."]}
        )
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        institution=institution,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        scopes=scopes,
        created_by=actor.user,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action="api_token.create",
        obj=token,
        institution=institution,
        after={
            "name": name,
            "prefix": prefix,
            "scopes": scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return token, f"sw_{prefix}_{secret}"


@transaction.atomic
def token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    institution = get_administered_institution(actor, token.institution_id)
    if actor.is_token:
        raise PermissionDenied("API tokens are revoked by a person.", code="token_cannot_manage_tokens")
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise Conflict("This token is already revoked.", code="token_already_revoked")
    token.revoked_at = timezone.now()
    token.revoked_by = actor.user
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        actor=actor,
        action="api_token.revoke",
        obj=token,
        institution=institution,
        before={"status": "active"},
        after={"status": "revoked"},
    )
    return token


class TokenRejected(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# A valid token is remembered in the Django cache (Redis in production, shared by every process) for
# at most TOKEN_CACHE_S, keyed by its prefix and the hash of its secret: an API call then costs no token
# query. Any change to a token or its institution (revocation, deactivation, an edit in the admin) puts a
# "stale" marker under the key at once and again after the commit (``token_cache_invalidate``, wired to
# post_save/post_delete in accounts/apps.py); while the marker lives, the token is read from the
# database on every call and not cached again (``cache.add`` never replaces the marker, so a request that
# read the row before the revocation committed cannot put the old row back).
TOKEN_CACHE_S = 30
TOKEN_CACHE_STALE_S = 300
_STALE = "stale"


def _token_cache_key(prefix: str, secret_hash: str) -> str:
    return f"apitoken:{prefix}:{secret_hash}"


def token_cache_invalidate(tokens) -> None:
    """Mark the cached copies of ``tokens`` stale now and again when the transaction commits."""
    keys = [_token_cache_key(t.prefix, t.secret_hash) for t in tokens]
    if not keys:
        return

    def mark():
        cache.set_many(dict.fromkeys(keys, _STALE), TOKEN_CACHE_STALE_S)

    mark()
    transaction.on_commit(mark)


def token_authenticate(raw: str, *, ip: str | None = None) -> ApiToken:
    """Resolve a presented token, or raise TokenRejected with a stable code."""
    match = TOKEN_RE.match(raw or "")
    if not match:
        raise TokenRejected("token_malformed", "The token is not a Suanwang API token.")
    prefix, secret = match.groups()
    digest = hash_secret(secret)
    key = _token_cache_key(prefix, digest)
    cached = cache.get(key)
    from_cache = isinstance(cached, ApiToken)
    if from_cache:
        token = cached  # matched prefix and secret hash when it was cached
    else:
        token = ApiToken.objects.select_related("institution").filter(prefix=prefix).first()
        if token is None or not hmac.compare_digest(token.secret_hash, digest):
            raise TokenRejected("token_invalid", "The token is not valid.")
    if token.revoked_at is not None:
        raise TokenRejected("token_revoked", "The token has been revoked.")
    now = timezone.now()
    if token.is_expired(now):
        raise TokenRejected("token_expired", "The token has expired.")
    if not token.institution.active:
        raise TokenRejected("institution_inactive", "The token's institution is not active.")
    resolution = settings.SUANWANG["TOKEN_LAST_USED_RESOLUTION_S"]
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= resolution:
        # Usage bookkeeping, not a state change: no audit row, at most one write a minute.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
        token.last_used_at, token.last_used_ip = now, ip
        if from_cache:
            cache.delete(key)  # the cached copy's last use is older (an entry lives until the next is due)
            return token
    if cached is None:
        # Kept until the next last-use write is due at the latest, so a cached call never owes one.
        ttl = min(TOKEN_CACHE_S, resolution - (now - token.last_used_at).total_seconds())
        if ttl >= 1:
            cache.add(key, token, ttl)
    return token


@transaction.atomic
def user_set_language(*, actor: Actor, language: str) -> None:
    """Remember the portal language a person chose (a preference: not audited)."""
    if actor.user is None or language not in dict(settings.LANGUAGES):
        return
    User.objects.filter(pk=actor.user.pk).exclude(preferred_language=language).update(preferred_language=language)
