"""Optional login for the web viewer: password hashes, signed session cookies, CSRF tokens,
API tokens, and `appliance passwd` to make a user line for the config.

Pure functions over plain data, plus the small CLI; web.py wires them to requests.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

ROLES = ("viewer", "admin")
ITERATIONS = 600_000  # PBKDF2-SHA256, OWASP's 2023 figure
SESSION_COOKIE = "herald_session"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return (f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


# Checked against for unknown names, so a login takes as long whether the name exists or not.
DUMMY_HASH = f"pbkdf2_sha256${ITERATIONS}${'A' * 22}==${'A' * 43}="


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt),
                                     int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def token_digest(token: str) -> str:
    """API tokens are long random strings: a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def load_secret(path: Path) -> bytes:
    """The key that signs sessions: read, or made once (0600) next to the data."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key.hex() + "\n")
        return key


def shared_secret(file: Path | None, env: str) -> bytes | None:
    """The signing key every web process of one store shares ([web] secret_file or
    secret_env), so a login and its CSRF token are valid on any of them; None when neither
    is set (then each host makes its own var/web.secret). Raises ValueError."""
    if file and env:
        raise ValueError("give [web] secret_file or secret_env, not both")
    if env:
        text = os.environ.get(env)
        if text is None:
            raise ValueError(f"[web] secret_env: the environment variable {env} is not set")
    elif file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"[web] secret_file {file}: {error.strerror} (make one with: "
                             f"python3 -c 'import secrets; print(secrets.token_hex(32))' > "
                             f"{file}; chmod 600 {file})") from None
    else:
        return None
    text = text.strip()
    if len(text) < 32:
        raise ValueError("the shared web secret must have at least 32 characters")
    return hashlib.sha256(text.encode()).digest()


def _sign(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def fingerprint(stored_hash: str) -> str:
    """Changes when a user's password (or entry) changes, which ends their sessions."""
    return hashlib.sha256(stored_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Session:
    user: Principal
    fingerprint: str
    nonce: str
    expires: float


def make_session(secret: bytes, user: Principal, stored_hash: str, seconds: float,
                 now: float) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(
        {"u": user.name, "r": user.role, "exp": int(now + seconds),
         "f": fingerprint(stored_hash), "n": secrets.token_hex(8)}).encode())
    return f"{payload.decode()}.{_sign(secret, payload)}"


def read_session(secret: bytes, cookie: str | None, now: float) -> Session | None:
    """The signed session in a cookie, if genuine and not expired."""
    if not cookie or "." not in cookie or not cookie.isascii():
        return None
    payload, signature = cookie.rsplit(".", 1)
    if not hmac.compare_digest(_sign(secret, payload.encode()).encode(), signature.encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("exp"), int) \
            or data["exp"] < now or data.get("r") not in ROLES:
        return None
    return Session(Principal(str(data.get("u")), data["r"]), str(data.get("f")),
                   str(data.get("n")), float(data["exp"]))


def csrf_token(secret: bytes, cookie: str) -> str:
    """Bound to the session: a form from another session (or site) cannot reuse it."""
    return _sign(secret, b"csrf:" + cookie.encode())


def csrf_ok(secret: bytes, cookie: str | None, token: str | None) -> bool:
    if not cookie or not token:
        return False
    return hmac.compare_digest(csrf_token(secret, cookie).encode(),
                               token.encode("utf-8", "replace"))


def passwd_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="appliance passwd",
        description="Print a line for [web] users (name:role:hash) of appliance.ini.")
    parser.add_argument("name")
    parser.add_argument("--role", choices=ROLES, default="viewer")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input (for scripts)")
    parser.add_argument("--token", action="store_true",
                        help="make an API token instead: prints the token and its [web] "
                             "tokens line")
    args = parser.parse_args(argv)
    if ":" in args.name or not args.name.strip():
        raise SystemExit("a user name must not be empty or contain ':'")
    if args.token:
        token = secrets.token_urlsafe(32)
        print(f"token (give it to the API client; it is not stored): {token}")
        print(f"{args.name}:{args.role}:{token_digest(token)}")
        return
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("the passwords differ")
    if len(password) < 8:
        raise SystemExit("use at least 8 characters")
    print(f"{args.name}:{args.role}:{hash_password(password)}")

