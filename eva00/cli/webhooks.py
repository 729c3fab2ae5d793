"""`eva00 webhooks register|status|unregister`: our Procore hook, from the command line.

- ``register --url https://hooks.example.com/webhooks/procore [--rotate-secret]`` creates or
  updates the hook and its triggers. The Authorization value Procore will send is the first of
  EVA00_WEBHOOK_SECRETS when that is set (secrets managed by the operator); otherwise the one
  stored in ``var/webhook-secrets``, generated on first use. ``--rotate-secret`` stores a new one
  first (the listener accepts old and new within a second), then gives it to Procore: no delivery
  is refused during a rotation.
- ``status`` lists our hooks, their triggers and recent deliveries with their outcomes.
- ``unregister`` deletes our hooks (their triggers go with them) and the stored secrets.
No command prints a secret.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import psycopg
import redis

from eva00.config import EXIT_CONFIG, ConfigError, Settings
from eva00.webhooks import register as hooks
from eva00.webhooks.auth import SecretFile, generate_secret
from eva00.webhooks.options import WebhookOptions

EXIT_API = 3  # Procore, PostgreSQL or Redis refused or unreachable
CALL_DEADLINE_S = 120.0  # a whole registration waits at most this long per call

# Builds the authenticated call; registers what it opens on the stack to be closed at the end.
CallFactory = Callable[[Settings, ExitStack], hooks.ProcoreCall]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eva00 webhooks",
                                     description="Our Procore webhook hook and its triggers.")
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="create or update our hook and its triggers")
    reg.add_argument("--url", required=True,
                     help="public https URL of the listener, e.g. https://hooks.example.com"
                          "/webhooks/procore")
    reg.add_argument("--rotate-secret", action="store_true",
                     help="generate a new Authorization secret (the previous one stays accepted)")
    reg.add_argument("--payload-version", choices=hooks.PAYLOAD_VERSIONS, default=None,
                     help="Procore payload format of the deliveries (default: "
                          f"{hooks.NEW_HOOK_PAYLOAD_VERSION} for a new hook, an existing hook keeps its own)")
    stat = sub.add_parser("status", help="hooks, triggers and recent deliveries")
    stat.add_argument("--deliveries", type=int, default=20, help="recent deliveries to show")
    sub.add_parser("unregister", help="delete our hooks and the stored secrets")
    return parser


def main(argv: Sequence[str] | None = None, *, call_factory: CallFactory | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"eva00: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    options = WebhookOptions.from_settings(settings)
    try:
        if args.command == "register":
            hooks.check_destination(args.url)
        with ExitStack() as resources:
            call = (call_factory or procore_call)(settings, resources)
            return run(args, hooks.HooksApi(call, settings.company_id, options.namespace), options)
    except ValueError as exc:
        print(f"eva00 webhooks: {exc}", file=sys.stderr)
        return 2
    except (psycopg.Error, redis.RedisError) as exc:
        # The Procore client keeps its token in PostgreSQL and its rate limiter in Redis.
        print(f"eva00 webhooks: PostgreSQL or Redis is not reachable ({type(exc).__name__}); "
              "is the stack up (`make up`)?", file=sys.stderr)
        return EXIT_API


def run(args: argparse.Namespace, api: hooks.HooksApi, options: WebhookOptions) -> int:
    try:
        if args.command == "register":
            return cmd_register(api, options, args)
        if args.command == "status":
            return cmd_status(api, args.deliveries)
        return cmd_unregister(api, options)
    except hooks.ApiError as exc:
        print(f"eva00 webhooks: Procore refused the call: {exc}", file=sys.stderr)
        return EXIT_API


def authorization_for(options: WebhookOptions, rotate: bool) -> tuple[str, str]:
    """(the value Procore will send, where it comes from)."""
    if options.secrets:
        if rotate:
            raise ValueError("EVA00_WEBHOOK_SECRETS is set: rotate by changing it (new value "
                             "first, keep the old one until Procore uses the new)")
        return options.secrets[0], "EVA00_WEBHOOK_SECRETS"
    store = SecretFile(options.secrets_file)
    current = store.current()
    if current is None or rotate:
        store.rotate(generate_secret())
        current = store.current()
        assert current is not None
        return current, f"new secret stored in {options.secrets_file}"
    return current, f"stored in {options.secrets_file}"


def cmd_register(api: hooks.HooksApi, options: WebhookOptions, args: argparse.Namespace) -> int:
    authorization, source = authorization_for(options, args.rotate_secret)
    report = hooks.register(api, args.url, authorization, payload_version=args.payload_version)
    verb = "created" if report.created_hook else "updated"
    print(f"hook {report.hook_id} {verb} in namespace {options.namespace}: {args.url}")
    print(f"Authorization value: {source} (not shown)")
    print(f"triggers: {len(report.created)} created, {len(report.kept)} kept, "
          f"{len(report.removed)} removed, {len(report.refused)} not offered")
    for resource, event, why in report.refused:
        print(f"  not subscribed: {resource} {event} ({why})")
    for extra in report.removed_hooks:
        print(f"  removed duplicate hook {extra}")
    return 0


def cmd_status(api: hooks.HooksApi, deliveries: int) -> int:
    found = hooks.status(api, deliveries)
    if not found:
        print(f"no hook in namespace {api.namespace}: run `eva00 webhooks register --url ...`")
        return 1
    for item in found:
        hook = item.hook
        print(f"hook {hook.get('id')}: {hook.get('destination_url')} "
              f"(payload {hook.get('api_version', '?')}, namespace {api.namespace})")
        names = sorted(f"{t.get('resource_name')} {str(t.get('event_type')).lower()}" for t in item.triggers)
        print(f"  {len(names)} triggers: {', '.join(names)}")
        outcomes = Counter(_outcome(d) for d in item.deliveries)
        summary = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
        print(f"  last {len(item.deliveries)} deliveries: {summary or 'none'}")
        for delivery in item.deliveries:
            print("    " + delivery_line(delivery))
    return 0


def delivery_line(delivery: dict[str, Any]) -> str:
    """One delivery; Procore documents ``outcome`` and ``event``, some answers carry ``status``
    and ``payload`` instead: either is shown."""
    event = delivery.get("event") or delivery.get("payload")
    event = event if isinstance(event, dict) else {}
    resource = event.get("resource_name") or event.get("resource_type") or "?"
    change = event.get("event_type") or event.get("reason") or "?"
    answered = str(delivery.get("response_status") or "-")
    return (f"{delivery.get('started_at') or '?'}  {_outcome(delivery):<10} {answered:<16} "
            f"{resource} {change} {event.get('resource_id', '')}").rstrip()


def _outcome(delivery: dict[str, Any]) -> str:
    return str(delivery.get("outcome") or delivery.get("status") or "?")


def cmd_unregister(api: hooks.HooksApi, options: WebhookOptions) -> int:
    removed = hooks.unregister(api)
    options.secrets_file.unlink(missing_ok=True)
    if removed:
        print(f"deleted hook(s) {', '.join(map(str, removed))} from namespace {options.namespace}")
    else:
        print(f"no hook in namespace {options.namespace}")
    return 0


def procore_call(settings: Settings, resources: ExitStack) -> hooks.ProcoreCall:
    """Calls through the shared Procore client (token store, rate limiter, retries), charged to
    the on-demand budget: an operator is waiting."""
    from eva00.procore import BudgetClass, build_client
    from eva00.procore.errors import ProcoreError
    from eva00.runtime import db
    from eva00.runtime.process import redis_client

    pool = resources.enter_context(db.make_pool(settings, max_size=2, name="webhooks-cli"))
    connection = resources.enter_context(redis_client(settings))
    client = build_client(settings, connection, pool)

    def call(method: str, path: str, *, params: Mapping[str, Any] | None = None,
             json: Any = None) -> Any:
        try:
            response = client.request(method, path, budget=BudgetClass.ON_DEMAND, params=params,
                                      json=json, deadline_s=CALL_DEADLINE_S)
        except ProcoreError as exc:
            raise hooks.ApiError(exc.status or 0, str(exc)) from None
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise hooks.ApiError(response.status_code, "the answer is not JSON") from None

    return call
