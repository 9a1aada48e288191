from __future__ import annotations

from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from webapp.accounts.forms import SignInForm, SignupForm, TokenForm
from webapp.accounts.models import ApiToken


class SignInView(auth_views.LoginView):
    form_class = SignInForm

    def form_invalid(self, form: SignInForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.throttled is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.throttled.retry_after)
        return response


def login(request: HttpRequest) -> HttpResponse:
    # Built per request so the sign-up link follows the setting (tests override it).
    view = SignInView.as_view(
        template_name="registration/login.html",
        redirect_authenticated_user=True,
        extra_context={"signup_enabled": django_settings.SIGNUP_ENABLED},
    )
    return view(request)


def signup(request: HttpRequest) -> HttpResponse:
    if not django_settings.SIGNUP_ENABLED:
        raise Http404("Sign-up is disabled.")
    if request.user.is_authenticated:
        return redirect("flow_list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # The post_save signal gives the new user the example flows.
        user = form.save()
        auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. The example flows are yours to try.")
        return redirect("flow_list")
    return render(request, "registration/signup.html", {"form": form})


def _settings_page(request: HttpRequest, form: TokenForm, new_token: str | None = None):
    tokens = ApiToken.objects.filter(user=request.user)
    context = {"form": form, "tokens": tokens, "new_token": new_token}
    return render(request, "accounts/settings.html", context)


@login_required
def settings(request: HttpRequest) -> HttpResponse:
    return _settings_page(request, TokenForm())


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, form)
    _, raw = ApiToken.issue(request.user, form.cleaned_data["name"])
    # Rendered straight into this response rather than redirected through the session:
    # the raw token must never be written anywhere, so this page is the only time it exists.
    return _settings_page(request, TokenForm(), new_token=raw)


@login_required
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    # Scoped to the user: someone else's token is a 404, never a hint it exists.
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    if request.method == "POST":
        token.delete()
        messages.success(request, f"Revoked the token “{token.name}”.")
        return redirect("settings")
    return render(request, "accounts/token_revoke.html", {"token": token})
