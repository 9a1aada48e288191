from __future__ import annotations

from django import forms

from graphs.net import MAX_URL_CHARS


class McpServerForm(forms.Form):
    name = forms.CharField(
        max_length=40,
        help_text="Letters, digits, _ and -; starts with a letter or _. Agents pick its tools "
        "as mcp:<name>/<tool>.",
    )
    url = forms.CharField(
        label="URL",
        max_length=MAX_URL_CHARS,
        help_text="Its Streamable HTTP endpoint, e.g. https://mcp.example.com/mcp.",
    )
    auth = forms.CharField(
        max_length=100,
        required=False,
        help_text="Optional: the name of a credential (bearer, API key, basic or custom "
        "headers) of the same owner, sent with every request.",
    )
    # An id, not a choice: whether the caller owns the team is the service's to say.
    team = forms.IntegerField(required=False, min_value=1, widget=forms.Select)

    def __init__(self, *args, teams=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].widget.choices = [("", "Just me"), *((t.pk, t.name) for t in teams)]
