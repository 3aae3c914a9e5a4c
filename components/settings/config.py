"""Stack configuration: strict pydantic models for the `egress` config namespace.

Parsing has no side effects and holds no secrets. Every problem is reported as one line that
names the config key, the destination (where there is one) and the field.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .versions import Pins

CONFIG_NAMESPACE = "egress"
KNOWN_KEYS = ("platform", "platformStack", "team", "teams", "destinations", "approvals", "credentials")

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# RFC 1123 host name; wildcards are rejected separately with a clearer message.
DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
# The duration syntax kgateway's CRDs accept (x-kubernetes-validations on every duration field).
DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}

# Upper bounds that keep a misbehaving upstream from tying up the gateway.
MAX_RETRY_ATTEMPTS = 10
MAX_TIMEOUT_MS = 5 * 60_000


class ConfigError(ValueError):
    """Invalid stack configuration; the message is one line meant for the user."""


def duration_ms(value: str) -> int:
    """Milliseconds in a kgateway duration such as `1m30s` or `250ms`."""
    return sum(int(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(value))


def _check_duration(value: str) -> str:
    if not DURATION.match(value):
        raise ValueError(f"'{value}' is not a duration the gateway accepts (e.g. 500ms, 10s, 1m30s)")
    if duration_ms(value) == 0:
        raise ValueError("must be greater than zero")
    if duration_ms(value) > MAX_TIMEOUT_MS:
        raise ValueError(f"'{value}' exceeds the 5m bound")
    return value


def _check_dns_label(value: str) -> str:
    if not DNS_LABEL.match(value):
        raise ValueError(f"'{value}' is not a DNS label (lowercase letters, digits and '-', at most 63)")
    return value


def _check_host(value: str) -> str:
    if "*" in value:
        raise ValueError(f"'{value}' is a wildcard; name one host per destination")
    if not DNS_NAME.match(value):
        raise ValueError(f"'{value}' is not a DNS name")
    return value


# Field types that carry their own validation, so each model states only what is special.
Duration = Annotated[str, AfterValidator(_check_duration)]
DnsLabel = Annotated[str, AfterValidator(_check_dns_label)]
HostName = Annotated[str, AfterValidator(_check_host)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True, strict=False
    )


class Authz(_Strict):
    """Who may use a destination: workloads of the owning team's namespace (their mesh identity),
    and, where headers are listed, only requests in which each carries one of its allowed values."""

    require_headers: dict[str, list[str]] = Field(default_factory=dict)
    deny_message: str = Field(default="Access denied by egress policy", min_length=1, max_length=512)

    @field_validator("require_headers")
    @classmethod
    def _headers(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, allowed in value.items():
            # Envoy hands headers to the authz server with lowercased keys.
            key = name.lower()
            if not HEADER_NAME.match(key):
                raise ValueError(f"'{name}' is not a valid header name")
            if not allowed or any(not isinstance(v, str) or v == "" for v in allowed):
                raise ValueError(f"header '{name}' needs at least one non-empty allowed value")
            # A value a request can carry: no control characters (a newline would also split the
            # route's list of values), no surrounding whitespace (HTTP strips it).
            bad = [v for v in allowed if v != v.strip(" \t") or any(c != "\t" and (c < " " or c == "\x7f") for c in v)]
            if bad:
                raise ValueError(
                    f"header '{name}': {bad[0]!r} is not a header value (control character or surrounding space)"
                )
            out[key] = list(allowed)
        return out


RetryOn = Literal[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
]


DEFAULT_RETRY_ON: tuple[RetryOn, ...] = ("gateway-error", "connect-failure", "reset")


class Retries(_Strict):
    """Upstream retries; `attempts: 3` means up to 4 tries in all.

    `statusCodes` alone retries only responses with those codes; an upstream that hangs or refuses
    connections is retried only through `retryOn`, hence the default (gateway errors, which include
    per-try timeouts, connection failures and resets).
    """

    attempts: int = Field(default=2, ge=0, le=MAX_RETRY_ATTEMPTS)
    per_try_timeout: Duration = "10s"
    status_codes: list[int] = Field(default_factory=lambda: [503, 504])
    retry_on: list[RetryOn] = Field(default_factory=lambda: list(DEFAULT_RETRY_ON), min_length=1)

    @field_validator("status_codes")
    @classmethod
    def _codes(cls, value: list[int]) -> list[int]:
        bad = [c for c in value if not 400 <= c <= 599]
        if bad:
            raise ValueError(f"status codes must be within 400-599, got {bad}")
        return value


# kgateway's token bucket refills no faster than every 50 ms (the CRD's rule on fillInterval).
MIN_FILL_MS = 50


class Budget(_Strict):
    """A token bucket: `requests` per `per`, bursts of up to `burst` (default: `requests`)."""

    requests: int = Field(ge=1, le=1_000_000)
    per: Duration = "1m"
    burst: int | None = Field(default=None, ge=1, le=1_000_000)

    @field_validator("per")
    @classmethod
    def _fill(cls, value: str) -> str:
        if duration_ms(value) < MIN_FILL_MS:
            raise ValueError(f"'{value}' is below the gateway's {MIN_FILL_MS}ms refill interval")
        return value

    @property
    def max_tokens(self) -> int:
        return self.burst if self.burst is not None else self.requests

    def within(self, ceiling: Budget) -> bool:
        """No faster and no burstier than `ceiling` (rates compared without rounding)."""
        rate_ok = self.requests * duration_ms(ceiling.per) <= ceiling.requests * duration_ms(self.per)
        return rate_ok and self.max_tokens <= ceiling.max_tokens

    def describe(self) -> str:
        return f"{self.requests}/{self.per} (burst {self.max_tokens})"


# Printable US-ASCII: what a header value may hold (the format around the secret).
_HEADER_TEXT = re.compile(r"^[ -~]*$")


class Credential(_Strict):
    """A header the gateway sets on the upstream request from a secret the team holds in its stack
    config (`egress:credentials.<secret>`), overwriting whatever the client sent."""

    header: str = Field(min_length=1, max_length=256)
    format: str = "{}"
    secret: DnsLabel

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not HEADER_NAME.match(value.lower()):
            raise ValueError(f"'{value}' is not a valid header name")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value.count("{}") != 1 or not _HEADER_TEXT.match(value):
            raise ValueError("must hold '{}' once (where the secret goes) and printable ASCII only, e.g. 'Bearer {}'")
        return value

    def value(self, secret: str) -> str:
        return self.format.replace("{}", secret)


class Destination(_Strict):
    """One external host a team may call through the egress gateway."""

    name: DnsLabel
    host: HostName
    port: Port
    protocol: Literal["HTTP", "HTTPS"] = "HTTPS"
    addresses: list[str] | None = None
    authz: Authz
    retries: Retries = Field(default_factory=Retries)
    timeout: Duration = "30s"
    fail_open: bool = False
    credential: Credential | None = None
    budget: Budget | None = None

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one address, or omit the field to resolve the host by DNS")
        for a in value:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise ValueError(f"'{a}' is not an IP address") from None
        return value

    @model_validator(mode="after")
    def _per_try_below_timeout(self) -> Destination:
        if duration_ms(self.retries.per_try_timeout) >= duration_ms(self.timeout):
            raise ValueError(
                f"retries.perTryTimeout ({self.retries.per_try_timeout}) must be below timeout ({self.timeout})"
            )
        return self


# Namespaces the platform owns or Kubernetes reserves: no team may claim them (Kyverno's default
# configuration does not even look at some of them).
RESERVED_NAMESPACES = frozenset(
    {"default", "kube-system", "kube-public", "kube-node-lease", "istio-system", "kgateway-system", "kyverno"}
    | {"kyverno-authz", "egress-system", "egress-tenants", "egress-credentials"}
)


def _check_team_namespace(value: str) -> str:
    if value in RESERVED_NAMESPACES or value.startswith("kube-"):
        raise ValueError(f"'{value}' is reserved for the platform (reserved: {', '.join(sorted(RESERVED_NAMESPACES))})")
    return value


TeamNamespace = Annotated[str, AfterValidator(_check_dns_label), AfterValidator(_check_team_namespace)]


class Team(_Strict):
    name: DnsLabel
    namespace: TeamNamespace


class ClusterConfig(_Strict):
    mode: Literal["kind", "existing"] = "kind"
    name: DnsLabel = "egress-dev"
    context: str = ""


class OllamaConfig(_Strict):
    enabled: bool = True
    # The destination whose STATIC endpoint is the container's address on the kind network.
    destination: str = "ollama"


class Sources(_Strict):
    """Where the platform's upstream artifacts come from: the upstream locations by default.

    Regulated platforms install from a mirror of their own. `chartRepository` is a Helm repository
    URL that serves every chart under its upstream name (base, istiod, cni, ztunnel, kgateway-crds,
    kgateway, kyverno, kyverno-authz-server); `chartDirectory` holds the packaged charts
    (`<name>-<version>.tgz`, as `helm pull` writes them) on the machine that runs `pulumi up`.
    `gatewayApiManifest` is the Gateway API `standard-install.yaml` of the pinned release (a URL or
    an absolute path).
    """

    chart_repository: str | None = None
    chart_directory: str | None = None
    gateway_api_manifest: str | None = None

    @field_validator("chart_repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(https?|oci)://\S+$", value):
            raise ValueError(f"'{value}' is not a Helm repository URL (http://, https:// or oci://)")
        return value.rstrip("/") if value else value

    @field_validator("chart_directory")
    @classmethod
    def _directory(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"'{value}' must be an absolute path")
        return value

    @field_validator("gateway_api_manifest")
    @classmethod
    def _manifest(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("/") or re.match(r"^https?://\S+$", value)):
            raise ValueError(f"'{value}' must be an http(s) URL or an absolute path")
        return value

    @model_validator(mode="after")
    def _one_chart_source(self) -> Sources:
        if self.chart_repository and self.chart_directory:
            raise ValueError("chartRepository and chartDirectory: name one of them, not both")
        return self


Environment = Literal["dev", "staging", "prod"]
ENVIRONMENTS: tuple[Environment, ...] = ("dev", "staging", "prod")
# The longest a production approval may run before security reviews it again.
PROD_APPROVAL_DAYS = 366


class PlatformConfig(_Strict):
    # Which environment this platform is: staging and prod refuse what only a sandbox should do
    # (see _check_environment), and take only the approvals that cover them.
    environment: Environment = "dev"
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    ollama: OllamaConfig = Field(default_factory=OllamaConfig)
    versions: Pins = Field(default_factory=Pins)
    sources: Sources = Field(default_factory=Sources)
    # Off for GitOps/CI and control planes without nodes, where something else watches rollouts:
    # `pulumi up` then returns once the API server has accepted every object.
    wait_for_ready: bool = True


# The ports the platform assigns to teams' listeners on the egress gateway. Unprivileged (kgateway
# binds a listener on its own port, the Service's targetPort too, so the pod port ztunnel judges is
# the listener port; below 1024 it would need privileges: pkg/deployer/gateway_parameters.go,
# usesPrivilegedPorts); below 15000, where Istio's own ports start (ztunnel listens on 15001, 15006
# and 15008 inside the gateway pod's network namespace in ambient).
TEAM_PORT_MIN, TEAM_PORT_MAX = 10000, 14999


class TeamEntry(_Strict):
    """The platform's record of a team: the namespace it owns and the port of its own listener on the
    egress gateway (teams choose neither). Only the team's namespace may connect to that port
    (ztunnel), only its routes attach to it, and authorization checks the port a request arrived on
    against the route's namespace. Keep a team's port while the team exists; never give it to another."""

    name: DnsLabel
    namespace: TeamNamespace
    port: Annotated[int, Field(ge=TEAM_PORT_MIN, le=TEAM_PORT_MAX)]


class Approval(_Strict):
    """One entry of the platform's approval registry (security approves; teams cannot)."""

    host: HostName
    ports: list[Port] = Field(min_length=1)
    teams: list[DnsLabel] = Field(min_length=1)
    ticket: str = Field(min_length=1)
    approved_by: str = Field(min_length=3)
    expires: dt.date
    # STATIC endpoints the destination may use; without it only DNS resolution of the host is approved.
    addresses: list[str] | None = None
    # Whether security accepts that this host stays reachable while the authz server is down.
    allow_fail_open: bool = False
    # The most any team may send to this host (requests per interval, burst): a destination of it
    # must then carry a budget within this one.
    rate_limit: Budget | None = None
    # The environments this approval covers; a platform takes only the approvals of its own.
    environments: list[Environment] = Field(default_factory=lambda: list(ENVIRONMENTS[:1]), min_length=1)

    def covers(self, environment: str) -> bool:
        return environment in self.environments

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str] | None) -> list[str] | None:
        for a in value or []:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise ValueError(f"'{a}' is not an IP address") from None
        return value

    @field_validator("approved_by")
    @classmethod
    def _approver(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"'{value}' is not an email address")
        return value


class StackConfig(_Strict):
    """Everything one stack's config says, validated as a whole."""

    platform: PlatformConfig | None = None
    platform_stack: str | None = None
    team: Team | None = None
    teams: list[TeamEntry] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    # Secret values by name (`pulumi config set --secret --path 'egress:credentials.<name>' ...`):
    # the decrypted value under the engine, the ciphertext in a stack file; never printed.
    credentials: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("credentials", mode="before")
    @classmethod
    def _ciphertext(cls, value: Any) -> Any:
        """A stack file holds `{secure: <ciphertext>}`; the engine passes the decrypted value."""
        if isinstance(value, Mapping):
            return {k: v["secure"] if isinstance(v, Mapping) and "secure" in v else v for k, v in value.items()}
        return value

    @property
    def is_platform(self) -> bool:
        return self.platform is not None

    @property
    def approvals_in_force(self) -> list[Approval]:
        """The platform's approvals that cover its environment: all this platform ever grants."""
        env = self.platform.environment if self.platform is not None else "dev"
        return [a for a in self.approvals if a.covers(env)]


def _location(loc: tuple[int | str, ...], raw: Any) -> str:
    """`egress:destinations[ollama].retries.perTryTimeout` from a pydantic error location."""
    key, *rest = loc
    out = f"{CONFIG_NAMESPACE}:{key}"
    node = raw.get(key) if isinstance(raw, Mapping) else None
    for part in rest:
        if isinstance(part, int):
            label: Any = part
            if isinstance(node, list) and part < len(node):
                item = node[part]
                if isinstance(item, Mapping) and isinstance(item.get("name") or item.get("host"), str):
                    label = item.get("name") or item.get("host")
                node = item
            out += f"[{label}]"
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
            out += f".{part}"
    return out


def _describe(err: Any, raw: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be")
    return f"{_location(loc, raw)}: {msg}"


def parse(raw: Mapping[str, Any]) -> StackConfig:
    """Validate the `egress:*` values of a stack (keys without the namespace) or raise ConfigError."""
    unknown = sorted(set(raw) - set(KNOWN_KEYS))
    if unknown:
        allowed = ", ".join(f"{CONFIG_NAMESPACE}:{k}" for k in KNOWN_KEYS)
        raise ConfigError(f"{CONFIG_NAMESPACE}:{unknown[0]}: unknown key (allowed: {allowed})")
    try:
        cfg = StackConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(e, raw) for e in exc.errors())) from None
    _check_stack(cfg)
    return cfg


def _check_environment(cfg: StackConfig) -> None:
    """What staging and production refuse: a kind cluster, the demo upstream, charts from the public
    repositories, skipped readiness waits; production also any fail-open approval and approvals that
    run longer than PROD_APPROVAL_DAYS without review."""
    p, ns = cfg.platform, CONFIG_NAMESPACE
    if p is None or p.environment == "dev":
        return
    where = f"{ns}:platform"
    env = p.environment
    if p.cluster.mode == "kind":
        raise ConfigError(f"{where}.cluster.mode: {env} runs on an existing cluster ('existing'), not kind")
    if p.ollama.enabled:
        raise ConfigError(f"{where}.ollama.enabled: the demo upstream is for dev only; set it to false in {env}")
    if not (p.sources.chart_repository or p.sources.chart_directory):
        raise ConfigError(f"{where}.sources: {env} installs charts from your mirror (chartRepository, chartDirectory)")
    if not p.wait_for_ready:
        raise ConfigError(f"{where}.waitForReady: {env} waits for its workloads to be ready; set it to true")
    if env != "prod":
        return
    horizon = dt.date.today() + dt.timedelta(days=PROD_APPROVAL_DAYS)
    for a in cfg.approvals:
        if not a.covers("prod"):
            continue
        if a.allow_fail_open:
            raise ConfigError(f"{ns}:approvals[{a.host}].allowFailOpen: production approvals never fail open")
        if a.expires > horizon:
            raise ConfigError(
                f"{ns}:approvals[{a.host}].expires: production approvals run at most {PROD_APPROVAL_DAYS} days "
                f"(until {horizon.isoformat()}), got {a.expires.isoformat()}"
            )
    for d in cfg.destinations:
        if d.fail_open:
            raise ConfigError(f"{ns}:destinations[{d.name}].failOpen: production destinations never fail open")


def _check_stack(cfg: StackConfig) -> None:
    ns = CONFIG_NAMESPACE
    _check_environment(cfg)
    if cfg.platform is not None and cfg.platform_stack:
        raise ConfigError(
            f"{ns}:platformStack: a stack is either the platform ({ns}:platform) or a team stack, not both"
        )
    if cfg.platform is None and not cfg.platform_stack:
        raise ConfigError(f"{ns}:platform or {ns}:platformStack: one of them is required")
    if cfg.platform_stack is not None and cfg.platform_stack.count("/") != 2:
        raise ConfigError(f"{ns}:platformStack: must be organization/<project>/<stack>, got '{cfg.platform_stack}'")
    if cfg.approvals and not cfg.is_platform:
        raise ConfigError(
            f"{ns}:approvals: only the platform stack holds approvals; a team cannot approve its own destinations"
        )
    if cfg.teams and not cfg.is_platform:
        raise ConfigError(f"{ns}:teams: only the platform stack says which namespace a team owns")
    owners: dict[str, str] = {}
    ports: dict[int, str] = {}
    for t in cfg.teams:
        if t.name in {o for o in owners.values()}:
            raise ConfigError(f"{ns}:teams[{t.name}].name: listed twice")
        if t.namespace in owners:
            raise ConfigError(
                f"{ns}:teams[{t.name}].namespace: '{t.namespace}' already belongs to team '{owners[t.namespace]}'"
            )
        if t.port in ports:
            raise ConfigError(f"{ns}:teams[{t.name}].port: {t.port} already belongs to team '{ports[t.port]}'")
        owners[t.namespace] = t.name
        ports[t.port] = t.name
    known = set(owners.values())
    for a in cfg.approvals:
        for team in a.teams:
            if team not in known:
                raise ConfigError(
                    f"{ns}:approvals[{a.host}].teams: team '{team}' is not in {ns}:teams (the platform's team registry)"
                )
    if cfg.is_platform and cfg.team is not None and owners.get(cfg.team.namespace) != cfg.team.name:
        raise ConfigError(f"{ns}:team: the demo team must be listed in {ns}:teams with namespace {cfg.team.namespace}")
    if cfg.destinations and cfg.team is None:
        raise ConfigError(f"{ns}:team: required when {ns}:destinations is set")
    seen_names: set[str] = set()
    seen_hosts: dict[str, str] = {}
    for d in cfg.destinations:
        if d.name in seen_names:
            raise ConfigError(f"{ns}:destinations[{d.name}].name: duplicate destination name")
        seen_names.add(d.name)
        if d.host in seen_hosts:
            raise ConfigError(
                f"{ns}:destinations[{d.name}].host: '{d.host}' is already used by destination '{seen_hosts[d.host]}'"
            )
        seen_hosts[d.host] = d.name
        if d.credential is not None and d.credential.secret not in cfg.credentials:
            raise ConfigError(
                f"{ns}:destinations[{d.name}].credential.secret: '{d.credential.secret}' is not in {ns}:credentials "
                f"(pulumi config set --secret --path '{ns}:credentials.{d.credential.secret}' <value>)"
            )
    for name in cfg.credentials:
        if not DNS_LABEL.match(name):
            raise ConfigError(f"{ns}:credentials.{name}: names are DNS labels (lowercase letters, digits and '-')")
    if cfg.platform and cfg.platform.ollama.enabled:
        target = cfg.platform.ollama.destination
        match = [d for d in cfg.destinations if d.name == target]
        if match and match[0].addresses:
            raise ConfigError(f"{ns}:destinations[{target}].addresses: omit it; the Ollama container's address is used")


def check_credentials_secret(raw: Mapping[str, Any], is_secret: bool) -> None:
    """`egress:credentials` must be a secret in the stack config (`--secret`); raise ConfigError if not.

    `is_secret` is the engine's word under `pulumi up`; in a stack file every value must be
    `{secure: ...}`.
    """
    values = raw.get("credentials")
    if not values:
        return
    ns = CONFIG_NAMESPACE
    if not isinstance(values, Mapping):
        raise ConfigError(f"{ns}:credentials: must map names to secret values")
    plain = [k for k, v in values.items() if not is_secret and not (isinstance(v, Mapping) and "secure" in v)]
    if plain:
        raise ConfigError(
            f"{ns}:credentials.{sorted(plain)[0]}: must be a secret: "
            f"pulumi config set --secret --path '{ns}:credentials.{sorted(plain)[0]}' <value>"
        )


def stack_environment(stack: str) -> Environment:
    """The environment a stack's name says: `staging`/`prod` or a `-staging`/`-prod` suffix, else dev."""
    stack = stack.removesuffix("-render")
    return next((e for e in ENVIRONMENTS[1:] if stack == e or stack.endswith(f"-{e}")), "dev")


def check_team_stack_name(stack: str, platform_stack: str) -> None:
    """Team stacks are named `team-<name>` in dev and `team-<name>-<env>` in staging and prod, and read
    the platform stack of that environment (`.../dev`, `.../staging`, `.../prod`); raise ConfigError otherwise."""
    named, reads = stack_environment(stack), stack_environment(platform_stack.rsplit("/", 1)[-1])
    if named != reads:
        raise ConfigError(
            f"{CONFIG_NAMESPACE}:platformStack: {stack.removesuffix('-render')} is a {named} team stack but reads "
            f"{platform_stack}, a {reads} platform (team stacks of {reads} are named team-<name>"
            f"{'' if reads == 'dev' else '-' + reads})"
        )
