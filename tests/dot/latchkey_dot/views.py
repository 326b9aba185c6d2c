"""The login page: a user name (alice or bob), no password, CSRF protected."""

from django.contrib.auth import get_user_model, login
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect

USERS = ("alice", "bob")


@csrf_protect
def login_view(request):
    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    error = ""
    if request.method == "POST":
        name = request.POST.get("login", "")
        if name in USERS:
            user = get_user_model().objects.get(username=name)
            # Updates last_login, which django-oauth-toolkit reports as auth_time.
            login(request, user)
            return redirect(next_url)
        error = f"unknown user: {name}"
    return render(request, "login.html", {"next": next_url, "error": error})
