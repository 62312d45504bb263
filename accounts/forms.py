"""Sign-in forms that refuse further attempts after repeated failures (see accounts.login_limits)."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from accounts.backends import REFUSED_ATTRIBUTE
from accounts.login_limits import login_is_blocked

TOO_MANY_ATTEMPTS = "Too many failed sign-in attempts. Try again in a few minutes."


class RateLimitedMixin:
    error_messages = {
        **AuthenticationForm.error_messages,
        "too_many_attempts": TOO_MANY_ATTEMPTS,
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        if self.request is not None and login_is_blocked(self.request, username):
            raise forms.ValidationError(self.error_messages["too_many_attempts"], code="too_many_attempts")
        # Attempts are counted by the authentication backend (accounts.backends), once each.
        try:
            return super().clean()
        except forms.ValidationError:
            if self.request is not None and getattr(self.request, REFUSED_ATTRIBUTE, False):
                raise forms.ValidationError(
                    self.error_messages["too_many_attempts"], code="too_many_attempts"
                ) from None
            raise


class RateLimitedAuthenticationForm(RateLimitedMixin, AuthenticationForm):
    """For the page's LoginView: `LoginView.as_view(authentication_form=RateLimitedAuthenticationForm)`."""


class RateLimitedAdminAuthenticationForm(RateLimitedMixin, AdminAuthenticationForm):
    error_messages = {**AdminAuthenticationForm.error_messages, "too_many_attempts": TOO_MANY_ATTEMPTS}
