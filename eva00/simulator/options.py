"""The simulator's options: set once by the command line, changed at run time by /_sim/config.

One mutable dataclass shared by every part; a reader takes the value it needs when it needs it,
so a change applies to the next request. Where the reference marks a behaviour (?) the default is
the harsher variant, and the option names the milder one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


class OptionError(ValueError):
    """A value /_sim/config or the command line cannot accept."""


@dataclass(frozen=True)
class Window:
    limit: int
    window_s: float
    name: str

    def text(self) -> str:
        return f"{self.limit}/{self.window_s:g}"


def parse_window(text: str | None, name: str) -> Window | None:
    """'100/60' -> Window(100, 60.0); 'off', '' or None -> None."""
    if text is None or str(text).strip().lower() in ("", "off", "none", "0"):
        return None
    limit, sep, window = str(text).partition("/")
    try:
        parsed = Window(int(limit), float(window) if sep else 3600.0, name)
    except ValueError:
        raise OptionError(f"{name}: expected N/WINDOW_S such as 100/60, got {text!r}") from None
    if parsed.limit < 1 or parsed.window_s <= 0:
        raise OptionError(f"{name}: limit and window must be positive, got {text!r}")
    return parsed


@dataclass
class WebhookOptions:
    duplicate_ratio: float = 0.0  # share of events delivered twice
    reorder_window_s: float = 0.0  # random extra delay in [0, this) so events overtake each other
    delay_s: float = 0.0  # every delivery waits this long first
    drop_ratio: float = 0.0  # share of events never delivered
    hmac_secret: str = ""  # set: X-Procore-Signature: sha256=<hex HMAC-SHA256 of the body>
    timeout_s: float = 5.0
    retry_base_s: float = 1.0  # backoff after a failure: base * 2^(attempt-1), capped
    retry_cap_s: float = 3600.0
    discard_after_s: float = 86400.0  # a delivery still failing after this is discarded


@dataclass
class SimOptions:
    # identity and hosts
    host: str = "127.0.0.1"
    port: int = 8400
    storage_port: int = 8402
    file_port: int = 8404  # the file host (record file URLs), on --host like the API
    company_id: int = 1000
    client_id: str = "eva00-sim-client"
    client_secret: str = "eva00-sim-secret"
    # data set
    projects: int = 20
    items: int = 5000
    seed: int = 42
    file_size_bytes: int = 64 * 1024
    anchor_epoch: int = 0  # "now" of the generated data; 0 = today 00:00 UTC
    # the company's shape (company.py): busy, closed and quiet projects
    active_share: float = 1.0
    inactive_share: float = 0.0
    active_churn_share: float = 0.8
    # Procore's clock this many times faster: rate windows this many times shorter (company.py)
    time_scale: float = 1.0
    # request handling
    lenient: bool = False
    missing_company_status: int = 400  # (?) undocumented; 400 with a Procore-shaped body
    per_page_over_max: str = "clamp"  # or "error" (422)
    link_keeps_filters: bool = False  # (?) harsher: Link URLs drop filters[...]
    updated_at_bounds: str = "inclusive"  # inclusive | start_exclusive | end_exclusive | exclusive
    daily_log_max_days: int = 31
    # tools switched off per project (tools.py): the --tools-off spec, and the status they answer
    tools_off: str = ""
    tools_off_status: int = 403  # or 404, also seen in real projects
    # oauth
    token_lifetime_s: float = 5400.0
    refresh_idle_expiry_s: float | None = None
    code_lifetime_s: float = 600.0
    auto_approve: bool = False
    # rate limits (None = window off)
    rate_limit: Window | None = field(default_factory=lambda: Window(100, 60.0, "rate"))
    spike: Window | None = field(default_factory=lambda: Window(25, 10.0, "spike"))
    hourly: Window | None = None
    drop_connection_ratio: float = 0.0
    count_refused: bool = True  # refused (429) requests count against the window too
    # files
    signed_url_ttl_s: float = 3600.0
    storage_link_host: str = ""  # host name used in signed URLs; "" = the other loopback name
    # change over time
    churn_per_s: float = 0.0
    # The server's clock runs this far ahead of the host's (negative: behind): its Date headers,
    # updated_at stamps and "today" move with it, as a real server's do against a skewed client.
    clock_offset_s: float = 0.0
    webhooks: WebhookOptions = field(default_factory=WebhookOptions)

    def windows(self) -> list[Window]:
        return [w for w in (self.rate_limit, self.spike, self.hourly) if w is not None]

    def link_host(self) -> str:
        if self.storage_link_host:
            return self.storage_link_host
        return "127.0.0.1" if self.host == "localhost" else "localhost"

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("rate_limit", "spike", "hourly"):
            window = getattr(self, name)
            data[name] = window.text() if window else "off"
        data.pop("client_secret")
        return data

    def update(self, changes: dict[str, Any]) -> None:
        """Apply /_sim/config changes; unknown or ill-typed keys raise OptionError, nothing half-set."""
        staged = dataclasses.replace(self, webhooks=dataclasses.replace(self.webhooks))
        for key, value in changes.items():
            _set(staged, key, value)
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(staged, f.name))


_FIXED = {"host", "port", "storage_port", "file_port", "company_id", "client_id", "client_secret",
          "projects", "items", "seed", "anchor_epoch", "tools_off", "active_share", "inactive_share",
          "active_churn_share", "time_scale"}


def _set(target: SimOptions, key: str, value: Any) -> None:
    if key == "webhooks":
        if not isinstance(value, dict):
            raise OptionError("webhooks: expected an object")
        for name, item in value.items():
            _assign(target.webhooks, name, item, "webhooks.")
    elif key in ("rate_limit", "spike"):
        setattr(target, key, scaled_window(parse_window(value, key), target.time_scale))
    elif key == "hourly":
        text = None if value in (None, "off") else f"{value}/3600" if "/" not in str(value) else value
        setattr(target, key, scaled_window(parse_window(text, key), target.time_scale))
    elif key in _FIXED:
        raise OptionError(f"{key} is fixed at start")
    elif key == "tools_off_status":
        if value not in (403, 404):
            raise OptionError("tools_off_status: 403 or 404")
        target.tools_off_status = int(value)
    else:
        _assign(target, key, value, "")


def scaled_window(window: Window | None, time_scale: float) -> Window | None:
    """A window as Procore states it, on a clock ``time_scale`` times faster."""
    if window is None or time_scale == 1.0:
        return window
    return dataclasses.replace(window, window_s=window.window_s / time_scale)


def _assign(target: Any, key: str, value: Any, prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    if key not in fields:
        raise OptionError(f"unknown option {prefix}{key}")
    current = getattr(target, key)
    try:
        if isinstance(current, bool) or fields[key].type == "bool":
            if not isinstance(value, bool):
                raise TypeError
            converted: Any = value
        elif value is None and "None" in str(fields[key].type):
            converted = None
        elif isinstance(current, int | float) or "float" in str(fields[key].type):
            converted = type(current)(value) if current is not None else float(value)
        else:
            converted = str(value)
    except (TypeError, ValueError):
        raise OptionError(f"{prefix}{key}: cannot use {value!r}") from None
    setattr(target, key, converted)
