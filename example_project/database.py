"""The example project's database from one URL (DATABASE_URL): `sqlite:///path` (relative to
the checkout; `sqlite:////path` absolute) or `postgres://user:password@host:port/name` (the
`postgres` extra brings the driver, psycopg)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

ENGINES = {
    "sqlite": "django.db.backends.sqlite3",
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
}


def database(url: str, base: Path) -> dict[str, str]:
    """Django's DATABASES entry for `url`; ValueError for a scheme it does not know."""
    parts = urlsplit(url)
    engine = ENGINES.get(parts.scheme)
    if engine is None:
        raise ValueError(
            f"DATABASE_URL={parts.scheme}://... is not supported: use sqlite:///path/db.sqlite3 "
            "or postgres://user:password@host:5432/name"
        )
    if parts.scheme == "sqlite":
        # sqlite:///db.sqlite3 is relative to `base`; sqlite:////srv/db.sqlite3 is absolute.
        return {"ENGINE": engine, "NAME": str(base / unquote(parts.path[1:]))}
    return {
        "ENGINE": engine,
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
