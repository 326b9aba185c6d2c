from django.urls import include, path

from . import views

urlpatterns = [
    path("login", views.login_view, name="login"),
    # At the root: the issuer is the origin, like the node test provider's.
    path("", include("oauth2_provider.urls")),
]
