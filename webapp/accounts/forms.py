from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from webapp.accounts import throttle


class SignupForm(UserCreationForm):
    """Username, an optional email, the password twice; Django's validators apply."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = False
        self.fields["email"].help_text = "Optional."
        self.fields["username"].widget.attrs["autocomplete"] = "username"
        self.fields["email"].widget.attrs["autocomplete"] = "email"


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. “CI” or “laptop”.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. CI", "autocomplete": "off"}),
    )


class SignInForm(AuthenticationForm):
    """Django's log-in form, throttled per account name and per client address.

    A locked name or address is refused before the password is looked at, so during a
    lock even the right one fails; ``throttled`` then says why, for the view's status.
    """

    throttled: throttle.Throttled | None = None

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not username or not password:
            return super().clean()  # a field is missing: nothing was tried
        address = throttle.request_address(self.request)
        try:
            throttle.check(account=username, address=address)
        except throttle.Throttled as exc:
            self.throttled = exc
            raise forms.ValidationError(exc.message, code="throttled") from None
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            throttle.failed(account=username, address=address)
            raise
        throttle.signed_in(username)
        return cleaned
