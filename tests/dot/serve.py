"""Starts django-oauth-toolkit for Latchkey's end-to-end tests.

Binds 127.0.0.1 on a free port (or --port), with a fresh SQLite database and a freshly
generated RS256 key in --state-dir (a new temporary directory, removed at exit, when not
given). Prints exactly one JSON line on stdout when ready:
    {"ready": true, "issuer": "http://127.0.0.1:PORT", "pid": PID}
Exits when stdin closes and on SIGTERM / SIGINT. Request logs go to stderr.

    python serve.py [--port N] [--access-token-ttl S] [--id-token-ttl S]
                    [--refresh-token-ttl S] [--state-dir DIR]
                    [--revocation-requires-client-auth] [--ignore-prompt-login]
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--access-token-ttl", type=int, default=60)
    p.add_argument("--id-token-ttl", type=int, default=3600)
    p.add_argument("--refresh-token-ttl", type=int, default=86400)
    p.add_argument("--state-dir", default="")
    p.add_argument(
        "--revocation-requires-client-auth",
        action="store_true",
        help="refuse revocation by public clients (invalid_client), as some providers do",
    )
    p.add_argument(
        "--ignore-prompt-login",
        action="store_true",
        help="drop prompt=login from authorization requests, as some providers do",
    )
    return p.parse_args()


def write_private_key(path):
    # Generated per instance; never stored in the repository.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def template_db_path():
    """A migrated empty database, shared by instances of the same code and packages:
    next to the interpreter's virtualenv, keyed by the project's sources."""
    digest = hashlib.sha256()
    for source in sorted(HERE.rglob("*.py")):
        digest.update(source.read_bytes())
    digest.update(sys.prefix.encode())
    return Path(sys.prefix) / f"latchkey-dot-template-{digest.hexdigest()[:16]}.sqlite3"


def prepare_database(db):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    template = template_db_path()
    if template.is_file():
        shutil.copyfile(template, db)
        return
    call_command("migrate", verbosity=0, interactive=False)
    for name in ("alice", "bob"):
        user = get_user_model().objects.create(username=name, email=f"{name}@example.test")
        user.set_unusable_password()
        user.save()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    try:
        partial = template.with_suffix(f".{os.getpid()}.tmp")
        with connection.cursor() as cursor:
            cursor.execute("VACUUM INTO %s", [str(partial)])
        os.replace(partial, template)
    except OSError as e:  # the cache is an optimisation only
        print(f"not caching the migrated database: {e}", file=sys.stderr)


def main():
    args = parse_args()
    owned = not args.state_dir
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="latchkey-dot-"))
    state.mkdir(parents=True, exist_ok=True)
    db = state / "provider.sqlite3"
    key = state / "oidc-rs256.pem"
    write_private_key(key)

    os.environ["DJANGO_SETTINGS_MODULE"] = "latchkey_dot.settings"
    os.environ["LATCHKEY_DOT_DB"] = str(db)
    os.environ["LATCHKEY_DOT_KEY_FILE"] = str(key)
    os.environ["LATCHKEY_DOT_ACCESS_TOKEN_TTL"] = str(args.access_token_ttl)
    os.environ["LATCHKEY_DOT_ID_TOKEN_TTL"] = str(args.id_token_ttl)
    os.environ["LATCHKEY_DOT_REFRESH_TOKEN_TTL"] = str(args.refresh_token_ttl)
    if args.revocation_requires_client_auth:
        os.environ["LATCHKEY_DOT_REVOCATION_CLIENT_AUTH"] = "1"
    if args.ignore_prompt_login:
        os.environ["LATCHKEY_DOT_IGNORE_PROMPT_LOGIN"] = "1"
    sys.path.insert(0, str(HERE))

    import django

    django.setup()
    prepare_database(db)

    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    server = ThreadedWSGIServer(("127.0.0.1", args.port), WSGIRequestHandler)
    server.daemon_threads = True
    server.set_app(get_wsgi_application())
    port = server.server_address[1]

    def stop(*_):
        if owned:
            shutil.rmtree(state, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_stdin():
        while sys.stdin.buffer.read(4096):
            pass
        stop()

    threading.Thread(target=watch_stdin, daemon=True).start()
    ready = {"ready": True, "issuer": f"http://127.0.0.1:{port}", "pid": os.getpid()}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
