"""Server settings: command-line flags over environment variables over defaults."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from core.ice_servers import IceServers
from core.keys import same_secret
from core.permissions import create_once
from core.ports import PortRange
from core.rate_limits import RateLimits
from core.redis_sentinel import DEFAULT_MASTER, SentinelUrl, is_sentinel_url, parse_hosts

CALL_RETENTION_S = 7 * 24 * 3600


class ConfigError(ValueError):
    """A setting that the server must not start with; the message names it and says why."""


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _env_list(name: str) -> list[str]:
    """A comma-separated variable (``VISITATION_STUN_URLS=stun:a:3478,stun:b:3478``)."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


@dataclass
class Settings:
    data_dir: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    workers: int = 0
    transcribers: int = 1  # transcription workers `serve` starts (0: run them elsewhere)
    ring_timeout_s: float = 45.0
    connect_timeout_s: float = 30.0
    presence_ttl_s: float = 15.0
    media_timeout_s: float = 15.0
    settle_retry_s: float = 30.0
    recordings_dir: Path | None = None
    recordings_url: str | None = None  # s3://bucket/prefix: recordings in object storage
    node_id: str = ""
    # Admission: calls one SFU worker (one core) takes; media.admission.DEFAULT_MAX_CALLS (the
    # benchmark's ceiling less a margin). Lowered to fit --rtc-ports when not given (cli).
    max_calls_per_worker: int = 32
    # Real networks (PROTOCOL.md v1.1): media port range, public address, STUN/TURN.
    rtc_ports: PortRange | None = None
    announce_ip: str | None = None
    stun_urls: list[str] = field(default_factory=list)
    turn_urls: list[str] = field(default_factory=list)
    turn_secret: str | None = field(default=None, repr=False)

    @property
    def ice_servers(self) -> IceServers:
        """The STUN/TURN servers handed to clients and workers (ValueError if inconsistent)."""
        return IceServers(tuple(self.stun_urls), tuple(self.turn_urls), self.turn_secret)

    demo: bool = False  # serve --demo: demo data, and the fake processor unless one is named
    payment_processor: str | None = None  # "fake" or "module:factory"; None: no payments
    allowed_origins: list[str] | None = None  # Socket.IO CORS; None: same origin only
    rate_limits: RateLimits = field(default_factory=RateLimits)
    billing_webhook_url: str | None = None
    billing_webhook_secret: str | None = None
    call_retention_s: float = CALL_RETENTION_S  # how long a call's flags outlive the call
    session_sweep_s: float = 0.5  # how often expired and revoked sessions are ended

    @property
    def recordings_path(self) -> Path:
        """Where recordings are written (shared by the SFU workers and signaling)."""
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def recordings_location(self) -> str:
        """``VISITATION_RECORDINGS_URL`` (``s3://bucket/prefix``), else the local directory:
        what :func:`recorder.storage.open_storage` opens, in nodes and workers alike."""
        return self.recordings_url or str(self.recordings_path)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        settings = cls(
            data_dir=Path(os.environ.get("VISITATION_DATA_DIR", "./var")),
            redis_url=env_redis_url(),
            recordings_url=os.environ.get("VISITATION_RECORDINGS_URL") or None,
            workers=int(_env_float("VISITATION_WORKERS", os.cpu_count() or 1)),
            transcribers=int(_env_float("VISITATION_TRANSCRIBERS", 1)),
            ring_timeout_s=_env_float("VISITATION_RING_TIMEOUT", 45.0),
            connect_timeout_s=_env_float("VISITATION_CONNECT_TIMEOUT", 30.0),
            media_timeout_s=_env_float("VISITATION_MEDIA_TIMEOUT", 15.0),
            max_calls_per_worker=int(
                _env_float("VISITATION_MAX_CALLS_PER_WORKER", cls.max_calls_per_worker)
            ),
            announce_ip=os.environ.get("VISITATION_ANNOUNCE_IP") or None,
            stun_urls=_env_list("VISITATION_STUN_URLS"),
            turn_urls=_env_list("VISITATION_TURN_URLS"),
            turn_secret=os.environ.get("VISITATION_TURN_SECRET") or None,
            payment_processor=os.environ.get("VISITATION_PAYMENT_PROCESSOR") or None,
            allowed_origins=_env_list("VISITATION_ALLOWED_ORIGINS") or None,
            rate_limits=_env_rate_limits(),
            billing_webhook_url=os.environ.get("VISITATION_BILLING_WEBHOOK_URL") or None,
            billing_webhook_secret=os.environ.get("VISITATION_BILLING_WEBHOOK_SECRET") or None,
        )
        ports = os.environ.get("VISITATION_RTC_PORTS")
        if ports:
            settings.rtc_ports = PortRange.parse(ports)
        for key, value in overrides.items():
            if value is not None and value != []:  # an unrepeated flag keeps the variable
                setattr(settings, key, value)
        if settings.redis_url and is_sentinel_url(settings.redis_url):
            try:
                SentinelUrl.parse(settings.redis_url)
            except ValueError as exc:
                raise ConfigError(f"the Redis URL: {exc}") from None
        settings.data_dir = settings.data_dir.resolve()  # workers and Redis get these paths
        if not settings.node_id:
            settings.node_id = f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(3)}"
        return settings

    def check(self, secret: bytes) -> None:
        """Refuse settings a server must not run with (ConfigError, naming the setting)."""
        self.rate_limits.check()
        if self.billing_webhook_url:
            if not self.billing_webhook_secret:
                raise ConfigError(
                    "VISITATION_BILLING_WEBHOOK_SECRET must be set when "
                    "VISITATION_BILLING_WEBHOOK_URL is: the webhook key is shared with the "
                    "billing company and never defaults to the server secret"
                )
            if len(self.billing_webhook_secret) < 16:
                raise ConfigError("VISITATION_BILLING_WEBHOOK_SECRET: at least 16 characters")
            if same_secret(self.billing_webhook_secret.encode(), secret):
                raise ConfigError(
                    "VISITATION_BILLING_WEBHOOK_SECRET must differ from VISITATION_SECRET"
                )
        for origin in self.allowed_origins or []:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ConfigError(
                    f"VISITATION_ALLOWED_ORIGINS: {origin!r} is not an origin "
                    "(scheme://host[:port], or *)"
                )


_SENTINEL_ONLY = (
    "VISITATION_REDIS_MASTER",
    "VISITATION_REDIS_PASSWORD",
    "VISITATION_REDIS_SENTINEL_PASSWORD",
)


def env_redis_url() -> str | None:
    """``REDIS_URL``, or the Sentinel URL that ``VISITATION_REDIS_SENTINELS`` (comma-separated
    host:port), ``VISITATION_REDIS_MASTER`` (default ``visitation``), ``VISITATION_REDIS_PASSWORD``
    and ``VISITATION_REDIS_SENTINEL_PASSWORD`` (if the Sentinels have one) make; None: embedded."""
    url = os.environ.get("REDIS_URL") or None
    hosts = os.environ.get("VISITATION_REDIS_SENTINELS", "").strip()
    if not hosts:
        for name in _SENTINEL_ONLY:
            if os.environ.get(name):
                raise ConfigError(
                    f"{name} is set but VISITATION_REDIS_SENTINELS is not "
                    "(a single Redis takes everything in REDIS_URL)"
                )
        return url
    if url:
        raise ConfigError(
            "REDIS_URL and VISITATION_REDIS_SENTINELS are both set: name one Redis "
            "(a redis+sentinel:// REDIS_URL, or the Sentinels)"
        )
    try:
        sentinels = parse_hosts(hosts)
    except ValueError as exc:
        raise ConfigError(f"VISITATION_REDIS_SENTINELS: {exc}") from None
    master = os.environ.get("VISITATION_REDIS_MASTER", "").strip() or DEFAULT_MASTER
    if not all(c.isalnum() or c in "-_." for c in master):
        raise ConfigError(f"VISITATION_REDIS_MASTER: {master!r} is not a Sentinel master name")
    return SentinelUrl(
        sentinels=sentinels,
        master=master,
        password=os.environ.get("VISITATION_REDIS_PASSWORD") or None,
        sentinel_password=os.environ.get("VISITATION_REDIS_SENTINEL_PASSWORD") or None,
    ).url()


def _env_rate_limits() -> RateLimits:
    try:
        return RateLimits.from_env()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_secret(data_dir: Path) -> bytes:
    """The server secret (each purpose derives its own key from it, see core.keys):
    VISITATION_SECRET, else one kept (0600) in the data dir."""
    env = os.environ.get("VISITATION_SECRET")
    if env:
        return env.encode()
    path = data_dir / "secret.key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    # Racing processes share one key, and none reads it half written.
    return create_once(path, secrets.token_hex(32).encode()).strip()
