"""Emails about accounts (console backend in the embedded mode)."""

from django.core.mail import send_mass_mail

from accounts.models import ApiToken
from accounts.selectors import institution_admin_emails


def notify_expiring_tokens(tokens: list[ApiToken]) -> None:
    if not tokens:
        return
    admins = institution_admin_emails({t.institution_id for t in tokens})
    messages = []
    for token in tokens:
        recipients = admins.get(token.institution_id, [])
        if not recipients:
            continue
        when = token.expires_at.strftime("%Y-%m-%d %H:%M %Z")
        messages.append(
            (
                f"[Suanwang] API token '{token.name}' expires {when} / API 令牌即将过期",
                f"The API token '{token.name}' (sw_{token.prefix}_…) of {token.institution.name} expires at {when}.\n"
                f"Create a replacement in the portal under Institution → API tokens, then revoke this one.\n\n"
                f"{token.institution.name} 的 API 令牌 '{token.name}' 将于 {when} 过期，请及时在门户中创建新令牌。\n",
                None,
                recipients,
            )
        )
    send_mass_mail(messages, fail_silently=False)
