"""The model backend with failed-attempt limits, so every sign-in form (page, admin) is covered."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from accounts.login_limits import login_attempt_begin, login_attempt_succeeded

# Set on the request when this backend refused an attempt, so the sign-in form can say why.
REFUSED_ATTRIBUTE = "login_refused_too_many_attempts"


class RateLimitedModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if request is None or username is None or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        # Counted before the password is checked: parallel attempts cannot all slip under the limit.
        if not login_attempt_begin(request, username):
            setattr(request, REFUSED_ATTRIBUTE, True)
            # PermissionDenied stops Django trying other backends: a block cannot be bypassed.
            raise PermissionDenied("Too many failed sign-in attempts.")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_attempt_succeeded(request, username)
        return user
