from __future__ import annotations

from django import forms

from graphs.credentials import KINDS, MAX_VALUE_CHARS

KIND_LABELS = {
    "bearer": "Bearer token",
    "basic": "Basic auth (user:password)",
    "api_key": "API key (in a header)",
    "headers": "Custom headers (Name: value lines)",
    "anthropic_key": "Anthropic API key",
}


class CredentialForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Letters, digits, _ and -; starts with a letter or _."
    )
    kind = forms.ChoiceField(choices=[(k, KIND_LABELS[k]) for k in KINDS])
    # Never rendered back with what was typed (render_value is off for password inputs).
    value = forms.CharField(
        max_length=MAX_VALUE_CHARS,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; never shown again.",
    )
    header = forms.CharField(
        max_length=100, required=False, help_text="API key only (default X-API-Key)."
    )
    # An id, not a choice: whether the caller owns the team is the service's to say (404 for
    # a stranger, 403 for a member), as in the API; the select only offers the teams owned.
    team = forms.IntegerField(required=False, min_value=1, widget=forms.Select)

    def __init__(self, *args, teams=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].widget.choices = [("", "Just me"), *((t.pk, t.name) for t in teams)]
