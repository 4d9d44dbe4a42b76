from django.urls import include, path

urlpatterns = [path("", include("voiceflow_channels.urls"))]
