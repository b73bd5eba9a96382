from django.urls import path

from . import views

api_urlpatterns = [
    path("csrf", views.csrf, name="csrf"),
    path("code", views.request_code, name="code"),
    path("login", views.api_login, name="login"),
    path("logout", views.api_logout, name="logout"),
    path("logout-all", views.api_logout_all, name="logout-all"),
    path("me", views.me, name="me"),
]
