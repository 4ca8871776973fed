"""Login, logout and the password reset flow (also how invited members choose their first password)."""

from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy

from portal.forms import InvitationAwarePasswordResetForm, LoginForm

login = auth_views.LoginView.as_view(
    template_name="portal/auth/login.html",
    authentication_form=LoginForm,
    redirect_authenticated_user=True,
)

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
