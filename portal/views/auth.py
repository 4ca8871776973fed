"""Login, logout and the password reset flow (also how invited members choose their first password)."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy
from django.views import i18n as i18n_views

from accounts.actors import actor_for_request
from accounts.services import user_set_language
from portal.forms import InvitationAwarePasswordResetForm, LoginForm


class LoginView(auth_views.LoginView):
    """Django's login, which also brings back the language the person chose last time."""

    def form_valid(self, form):
        response = super().form_valid(form)
        language = form.get_user().preferred_language
        if language and settings.LANGUAGE_COOKIE_NAME not in self.request.COOKIES:
            response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=365 * 24 * 3600,
                                samesite="Lax", secure=settings.SESSION_COOKIE_SECURE)
        return response


login = LoginView.as_view(
    template_name="portal/auth/login.html",
    authentication_form=LoginForm,
    redirect_authenticated_user=True,
)


def set_language(request):
    """Switch the language (Django's view) and remember it for the person's next login."""
    response = i18n_views.set_language(request)
    language = request.POST.get("language")
    if request.method == "POST" and request.user.is_authenticated and language in dict(settings.LANGUAGES):
        user_set_language(actor=actor_for_request(request), language=language)
    return response

logout = auth_views.LogoutView.as_view()

password_reset = auth_views.PasswordResetView.as_view(
    template_name="portal/auth/password_reset_form.html",
    form_class=InvitationAwarePasswordResetForm,
    email_template_name="portal/auth/password_reset_email.txt",
    subject_template_name="portal/auth/password_reset_subject.txt",
    success_url=reverse_lazy("portal:password_reset_done"),
)

password_reset_done = auth_views.PasswordResetDoneView.as_view(
    template_name="portal/auth/password_reset_done.html",
)

password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="portal/auth/password_reset_confirm.html",
    success_url=reverse_lazy("portal:password_reset_complete"),
)

password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="portal/auth/password_reset_complete.html",
)
