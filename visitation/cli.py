"""The ``visitation`` console script: serve, seed, token, revoke (PROTOCOL.md "Command line"),
device and staff-password (v1.2), and ``worker`` (one SFU worker process for another machine:
``python -m visitation.worker``).

Every command makes its files private (umask 077: the data dir is the server user's alone).
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import sys
import time
from pathlib import Path

import uvloop

from core.config import ConfigError, Settings, env_redis_url, load_secret
from core.logs import LOG_FORMATS, setup_logging
from core.permissions import private_umask
from core.ports import PortRange, capacity_error, fitted_calls
from core.tokens import DEFAULT_TTL_S, ROLES, Tokens
from visitation.seed import SeedError

DEVICE_TTL_S = 365 * 24 * 3600


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visitation", description="Video visitation server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the signaling tier, SFU workers and recorder")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", type=Path, default=None)
    serve.add_argument("--redis-url", default=None)
    serve.add_argument("--workers", type=int, default=None, help="SFU workers (default: cores)")
    serve.add_argument(
        "--transcribers",
        type=int,
        default=None,
        help="transcription workers ($VISITATION_TRANSCRIBERS; default 1; 0: run them elsewhere)",
    )
    serve.add_argument("--ring-timeout", type=float, default=None, help="seconds (default 45)")
    serve.add_argument(
        "--max-calls-per-worker",
        type=int,
        default=None,
        help="calls each SFU worker admits before call.place answers capacity (default"
        f" {Settings.max_calls_per_worker}: what the benchmark shows one core carries, less a"
        " margin; lowered to what --rtc-ports holds)",
    )
    net = serve.add_argument_group("real networks (PROTOCOL.md v1.1)")
    net.add_argument(
        "--rtc-ports",
        type=_port_range,
        default=None,
        metavar="MIN-MAX",
        help="UDP ports of every SFU media socket, split between the workers "
        "($VISITATION_RTC_PORTS; default: ephemeral ports)",
    )
    net.add_argument(
        "--announce-ip",
        default=None,
        metavar="ADDR",
        help="public address put in the SFU's answers beside the local ones "
        "($VISITATION_ANNOUNCE_IP): a NAT 1:1 host, a cloud VM, a container",
    )
    net.add_argument(
        "--stun-url",
        action="append",
        default=[],
        metavar="URL",
        help="STUN server for clients and workers, repeatable ($VISITATION_STUN_URLS)",
    )
    net.add_argument(
        "--turn-url",
        action="append",
        default=[],
        metavar="URL",
        help="TURN server, e.g. turn:HOST:3478?transport=udp, repeatable ($VISITATION_TURN_URLS)",
    )
    net.add_argument(
        "--turn-secret",
        default=None,
        help="the TURN server's shared secret (coturn use-auth-secret; $VISITATION_TURN_SECRET)",
    )
    serve.add_argument("--demo", action="store_true", help="load demo data and print tokens")
    serve.add_argument("--log-level", default=os.environ.get("VISITATION_LOG_LEVEL", "INFO"))
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="text (default) or json lines ($VISITATION_LOG_FORMAT); secrets are never logged",
    )

    seed = sub.add_parser("seed", help="load facilities, residents, families, contacts, staff")
    seed.add_argument("file", type=Path)
    seed.add_argument("--data-dir", type=Path, default=None)
    seed.add_argument("--redis-url", default=None)

    token = sub.add_parser("token", help="print a signed bearer token")
    token.add_argument("role", choices=ROLES)
    token.add_argument("subject")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help="seconds")
    token.add_argument("--data-dir", type=Path, default=None)
    token.add_argument("--redis-url", default=None, help="where admins are looked up")

    revoke = sub.add_parser("revoke", help="end every token of a subject issued before now")
    revoke.add_argument("role", choices=ROLES)
    revoke.add_argument("subject")
    revoke.add_argument("--data-dir", type=Path, default=None)
    revoke.add_argument("--redis-url", default=None)

    device = sub.add_parser(
        "device",
        help="print a device token for a shared tablet of a facility (it may only "
        "sign residents in; revoke with: visitation revoke device FACILITY_ID)",
    )
    device.add_argument("facility_id")
    device.add_argument("--ttl", type=int, default=DEVICE_TTL_S, help="seconds (default 365 days)")
    device.add_argument("--data-dir", type=Path, default=None)
    device.add_argument("--redis-url", default=None, help="where the facility is looked up")

    password = sub.add_parser(
        "staff-password", help="set a staff member's password, read from stdin (no echo on a tty)"
    )
    password.add_argument("staff_id")
    password.add_argument("--data-dir", type=Path, default=None)
    password.add_argument("--redis-url", default=None)
    sub.add_parser(
        "worker",
        add_help=False,
        help="run one SFU worker process (for a media host; takes python -m visitation.worker's "
        "flags: --redis-url, --recordings-dir, --announce-ip, --rtc-ports ...)",
    )
    return parser


def _port_range(text: str) -> PortRange:
    try:
        return PortRange.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env(
        data_dir=args.data_dir,
        redis_url=getattr(args, "redis_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=getattr(args, "workers", None),
        transcribers=getattr(args, "transcribers", None),
        ring_timeout_s=getattr(args, "ring_timeout", None),
        max_calls_per_worker=getattr(args, "max_calls_per_worker", None),
        rtc_ports=getattr(args, "rtc_ports", None),
        announce_ip=getattr(args, "announce_ip", None),
        stun_urls=getattr(args, "stun_url", None),
        turn_urls=getattr(args, "turn_url", None),
        turn_secret=getattr(args, "turn_secret", None),
    )
    given = getattr(args, "max_calls_per_worker", None) is not None
    if not given and "VISITATION_MAX_CALLS_PER_WORKER" not in os.environ:
        fit_default_calls(settings)
    return settings


def fit_default_calls(settings: Settings) -> None:
    """The default calls per worker, lowered to what ``--rtc-ports`` holds for every worker
    (a limit the operator set is checked instead: :func:`network_error`)."""
    if settings.rtc_ports is None or settings.workers < 1:
        return
    settings.max_calls_per_worker = fitted_calls(
        settings.max_calls_per_worker,
        settings.rtc_ports,
        settings.workers,
        turn=bool(settings.turn_urls),
    )


def network_error(settings: Settings) -> str | None:
    """Why the network settings cannot work, or ``None`` (checked before anything starts)."""
    try:
        settings.ice_servers  # noqa: B018 - validates the URLs and the secret
        if settings.announce_ip is not None:
            ipaddress.ip_address(settings.announce_ip)
    except ValueError as exc:
        return str(exc)
    if settings.rtc_ports is not None and settings.workers > 0:
        return capacity_error(
            settings.rtc_ports,
            settings.workers,
            settings.max_calls_per_worker,
            turn=bool(settings.turn_urls),
        )
    return None


def _token(args: argparse.Namespace, settings: Settings) -> int:
    if args.ttl <= 0:
        print("visitation token: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        tokens = Tokens(load_secret(settings.data_dir))
        token = tokens.issue(args.role, args.subject, args.ttl)
    except ValueError as exc:
        print(f"visitation token: {exc}", file=sys.stderr)
        return 2
    if args.role == "admin":
        from visitation.serve import is_admin

        if not uvloop.run(is_admin(args.subject, settings.data_dir, settings.redis_url)):
            print(
                f"visitation token: no staff member {args.subject!r} whose role is admin "
                "(seed one: staff with role admin and its facility_ids)",
                file=sys.stderr,
            )
            return 2
    print(token)
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    from visitation.serve import run_revoke

    try:
        moment = uvloop.run(
            run_revoke(args.role, args.subject, settings.data_dir, settings.redis_url)
        )
    except ValueError as exc:
        print(f"visitation revoke: {exc}", file=sys.stderr)
        return 2
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(moment))
    print(
        f"revoked {args.role} {args.subject}: tokens issued before {when} no longer work; "
        "open connections close within 2 s"
    )
    return 0


async def _facility_exists(facility_id: str, settings: Settings) -> bool:
    from core.directory import Directory
    from visitation.serve import redis_for

    async with redis_for(settings.data_dir, settings.redis_url) as redis:
        return await Directory(redis).facility(facility_id) is not None


def _device(args: argparse.Namespace, settings: Settings) -> int:
    if args.ttl <= 0:
        print("visitation device: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        token = Tokens(load_secret(settings.data_dir)).issue("device", args.facility_id, args.ttl)
    except ValueError as exc:
        print(f"visitation device: {exc}", file=sys.stderr)
        return 2
    if not uvloop.run(_facility_exists(args.facility_id, settings)):
        print(f"visitation device: no facility {args.facility_id!r}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _read_password(staff_id: str) -> str:
    """The new password: asked twice without echo on a terminal, else stdin's first line."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"new password for {staff_id}: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().removesuffix("\n").removesuffix("\r")


async def _set_staff_password(staff_id: str, password: str, settings: Settings) -> str | None:
    """Set it; None, or why not (no such staff member)."""
    from accounts.credentials import Credentials
    from accounts.passwords import SecretHasher
    from core.directory import Directory
    from visitation.serve import redis_for

    async with redis_for(settings.data_dir, settings.redis_url) as redis:
        if await Directory(redis).staff(staff_id) is None:
            return f"no staff member {staff_id!r} (seed one, or add it on /admin)"
        await Credentials(redis, SecretHasher()).set_staff_password(staff_id, password)
    return None


def _staff_password(args: argparse.Namespace, settings: Settings) -> int:
    from accounts.passwords import PasswordRefused, check_password

    try:
        password = _read_password(args.staff_id)
        check_password(password, args.staff_id)
    except (PasswordRefused, ValueError, EOFError) as exc:
        reason = str(exc) or "no password given"
        print(f"visitation staff-password: {reason}; nothing was changed", file=sys.stderr)
        return 2
    problem = uvloop.run(_set_staff_password(args.staff_id, password, settings))
    if problem is not None:
        print(f"visitation staff-password: {problem}; nothing was changed", file=sys.stderr)
        return 2
    print(f"password set for {args.staff_id}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["transcriber"]:  # its own flags, parsed by the transcription worker
        from transcripts.worker import main as transcriber_main

        private_umask()
        return transcriber_main(argv[1:])
    if argv[:1] == ["worker"]:  # its own flags, parsed by the worker
        from visitation.worker import main as worker_main

        private_umask()
        try:  # the Sentinels, as a node is told them, when no REDIS_URL names one Redis
            redis_url = env_redis_url()
        except ConfigError as exc:
            print(f"visitation worker: {exc}", file=sys.stderr)
            return 2
        if redis_url:
            os.environ["REDIS_URL"] = redis_url
        return worker_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    private_umask()
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"visitation {args.command}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a bad VISITATION_* variable
        parser.error(str(exc))
    if args.command == "token":
        return _token(args, settings)
    if args.command == "revoke":
        return _revoke(args, settings)
    if args.command == "device":
        return _device(args, settings)
    if args.command == "staff-password":
        return _staff_password(args, settings)
    if args.command == "seed":
        from visitation.serve import run_seed

        try:
            print(uvloop.run(run_seed(args.file, settings.data_dir, settings.redis_url)))
        except SeedError as exc:
            print(f"visitation seed: {exc}; nothing was written", file=sys.stderr)
            return 1
        return 0
    if settings.max_calls_per_worker < 1:
        print("visitation serve: --max-calls-per-worker must be at least 1", file=sys.stderr)
        return 2
    problem = network_error(settings)
    if problem is not None:
        print(f"visitation serve: {problem}", file=sys.stderr)
        return 2
    if args.log_format:  # the SFU workers this process starts log the same way
        os.environ["VISITATION_LOG_FORMAT"] = args.log_format
    setup_logging(args.log_level, args.log_format)
    from visitation.serve import serve

    try:
        uvloop.run(serve(settings, demo=args.demo))
    except ConfigError as exc:
        print(f"visitation serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
