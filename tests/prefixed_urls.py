"""A project that mounts the app's URLs under a prefix, as `include` allows."""

from django.urls import include, path

urlpatterns = [path("voice/", include("voiceflow_channels.urls"))]
