from __future__ import annotations

from django import forms

from webapp.teams.models import Role
from webapp.teams.services import LINK_DAYS

ROLE_CHOICES = [
    (Role.VIEWER, "Viewer: opens flows and runs"),
    (Role.EDITOR, "Editor: also edits and runs"),
    (Role.OWNER, "Owner: also shares and manages the team"),
]


class TeamForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Data science", "autocomplete": "off"}),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the team a name.")
        return name


class InviteForm(forms.Form):
    who = forms.CharField(
        label="Username or e-mail",
        max_length=254,
        widget=forms.TextInput(
            attrs={"placeholder": "bob or bob@example.com", "autocomplete": "off"}
        ),
    )
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.EDITOR)


class InviteLinkForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.EDITOR)
    days = forms.TypedChoiceField(
        label="Expires after",
        choices=[(d, f"{d} day{'s' if d > 1 else ''}") for d in LINK_DAYS],
        coerce=int,
        initial=7,
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
