"""The operations endpoints: include them in your project's urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz, name="voiceflow-healthz"),
    path("readyz", views.readyz, name="voiceflow-readyz"),
    path("metrics", views.metrics_view, name="voiceflow-metrics"),
]
