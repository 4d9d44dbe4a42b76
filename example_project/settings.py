"""Settings of the example project that hosts voiceflow_channels; everything comes from the env."""

from __future__ import annotations

import os
from pathlib import Path

from example_project.database import database

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-not-for-production")
DEBUG = False
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "voiceflow_channels",
]
# startproject's list: CSRF stays on, as in any project, and the voice webhooks work with it.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
# The admin's own CSS and JS: served by daphne's runserver in development, by `collectstatic`
# and your web server in production.
STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or None
MEDIA_ROOT = os.environ.get("DJANGO_MEDIA_ROOT", str(BASE_DIR / "media"))
MEDIA_URL = "media/"
ROOT_URLCONF = "example_project.urls"
ASGI_APPLICATION = "example_project.asgi.application"
# The call records' home: SQLite in the checkout unless DATABASE_URL says otherwise.
DATABASES = {"default": database(os.environ.get("DATABASE_URL", "sqlite:///db.sqlite3"), BASE_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# Django's default is America/Chicago, which it also makes the process's TZ; the logs are UTC.
TIME_ZONE = "UTC"

# voiceflow_channels: raw env values; the app parses them and its system checks reject bad ones.
VOZ_FEATURE_VOICE_FLOW_A = os.environ.get("VOZ_FEATURE_VOICE_FLOW_A", "0")
VOZLIA_DEBUG = os.environ.get("VOZLIA_DEBUG", "0")
VOICE_WAIT_SOUND_TRIGGER_MS = os.environ.get("VOICE_WAIT_SOUND_TRIGGER_MS", "800")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
VOICEFLOW_PUBLIC_URL = os.environ.get("VOICEFLOW_PUBLIC_URL", "")
VOICE_WAIT_SOUND_FILE = os.environ.get("VOICE_WAIT_SOUND_FILE", "")
# Comma-separated: +15551234567,sip:*@pbx.example.com (conf reads the string as a list).
VOICEFLOW_TRANSFER_ALLOWLIST = os.environ.get("VOICEFLOW_TRANSFER_ALLOWLIST", "")
VOICEFLOW_TENANT_RESOLVER = os.environ.get("VOICEFLOW_TENANT_RESOLVER", "")
# The demo consumer (example_project/demo.py): how long pressing 1 makes it "think".
DEMO_WAIT_MS = int(os.environ.get("DEMO_WAIT_MS", "3000"))
# ... and where it transfers a call to (on VOICEFLOW_TRANSFER_ALLOWLIST; unset: it does not).
DEMO_TRANSFER_TO = os.environ.get("DEMO_TRANSFER_TO", "")
# The model assistant (example_project/assistant.py), served when OPENAI_API_KEY is set: how
# long its check_order_status tool takes.
DEMO_TOOL_MS = int(os.environ.get("DEMO_TOOL_MS", "2000"))

# One process: the in-memory layer. Several processes: one Redis shared by all (REDIS_URL).
if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A burst of call starts takes one pooled connection per group_add at once;
            # redis-py's pool refuses past 100 by default.
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default, the very time
                # channels_redis blocks on a call's empty queue: each quiet call's receive then
                # timed out every 5 s (a warning, a reconnect, a gap). Reads may block longer.
                "hosts": [
                    {
                        "address": os.environ["REDIS_URL"],
                        "max_connections": 1000,
                        "socket_timeout": 10,
                    }
                ],
                # Messages to a process's calls share one queue in Redis; audio comes in 1 s
                # parts, so 30 calls each sent a minute of reply are 1,800 messages at once:
                # past channels_redis's default of 100 it drops them.
                "capacity": 5000,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# How each call is to end (a hang-up, a transfer) is kept in the cache, read by whichever
# process Twilio asks next: with several processes, the same Redis.
if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            # Twilio waits 15 s for TwiML: a Redis that hangs must fail well before that, so the
            # webhook still answers (a reconnect) instead of Twilio's "application error".
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "example_project.logs.UTCFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    # DEBUG here: VOZLIA_DEBUG is the one switch that decides whether the app emits debug lines.
    "loggers": {"voiceflow_channels": {"level": "DEBUG"}},
}
