"""CurveZMQ keys for the appliance link: `appliance keys NAME` makes a key pair; the relay
admits only the forwarders whose public keys it lists; a forwarder pins the relay's key.

Key files are ZeroMQ's certificate format (NAME.key public, NAME.key_secret secret).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator

from appliance.errors import ConfigError

log = logging.getLogger(__name__)


def load_pair(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) from a NAME.key_secret file."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read a Curve key pair: {error}", str(path)) from None
    if not secret:
        raise ConfigError("this is a public key file; give the .key_secret file", str(path))
    return public, secret


def server_key(text: str) -> bytes:
    """The relay's public key: 40 Z85 characters, or a NAME.key file holding it."""
    value = text.strip()
    if len(value) == 40 and not Path(value).exists():
        return value.encode("ascii")
    try:
        public, _secret = zmq.auth.load_certificate(value)
    except (OSError, ValueError) as error:
        raise ConfigError(f"server_key is neither a 40-character key nor a key file: {error}",
                          value) from None
    return public


def serve_curve(context: zmq.asyncio.Context, socket: zmq.Socket, secret_key_file: Path,
                allowed_keys: Path) -> AsyncioAuthenticator:
    """Make `socket` a Curve server that admits only the public keys in `allowed_keys`."""
    public, secret = load_pair(secret_key_file)
    if not Path(allowed_keys).is_dir():
        raise ConfigError("allowed_keys must be a folder of NAME.key files", str(allowed_keys))
    authenticator = AsyncioAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(allowed_keys))
    socket.curve_secretkey, socket.curve_publickey = secret, public
    socket.curve_server = True
    return authenticator


def client_curve(socket: zmq.Socket, client_key_file: Path, server_public: bytes) -> None:
    public, secret = load_pair(client_key_file)
    socket.curve_secretkey, socket.curve_publickey = secret, public
    socket.curve_serverkey = server_public


def keys_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="appliance keys", description="Make a CurveZMQ key pair for the appliance link.")
    parser.add_argument("name", help="e.g. dmz-forwarder or core-relay")
    parser.add_argument("--dir", type=Path, default=Path("conf/keys"),
                        help="where to write NAME.key and NAME.key_secret (default: "
                             "%(default)s)")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    if (args.dir / f"{args.name}.key_secret").exists():
        raise SystemExit(f"appliance keys: {args.dir / args.name}.key_secret exists; "
                         "not overwriting a key")
    public_file, secret_file = zmq.auth.create_certificates(str(args.dir), args.name)
    Path(secret_file).chmod(0o600)
    public, _ = zmq.auth.load_certificate(public_file)
    print(f"public key  {public.decode()}  ({public_file}: give it to the other side)\n"
          f"secret key  {secret_file} (keep it here, readable by the appliance only)")
