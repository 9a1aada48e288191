from django.urls import path

from webapp.api import api

urlpatterns = [path("", api.urls)]
