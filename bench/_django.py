"""Django for benchmarks: a fresh PostgreSQL database (``suanwang_bench``) unless DATABASE_URL says otherwise."""

import os
import sys

DEFAULT_BENCH_DB = "postgres://postgres@127.0.0.1:5432/suanwang_bench"


def setup(*, fresh: bool = True) -> str:
    url = os.environ.setdefault("DATABASE_URL", DEFAULT_BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if url.startswith("postgres") and fresh:
        import psycopg

        name = url.rsplit("/", 1)[1]
        server = url.rsplit("/", 1)[0] + "/postgres"
        try:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            sys.exit(f"bench: PostgreSQL is not reachable at {server} ({exc}); run `make services` first")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connection

    return connection.vendor
