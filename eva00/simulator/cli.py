"""`eva00 sim` / `python -m eva00.simulator`: start the Procore simulator.

API and login share one server (``http://HOST:PORT``); record file URLs point at the file host
(``http://HOST:FILE_PORT``: the bearer token, then a redirect), whose redirects go to the storage
host (``http://STORAGE_HOST:STORAGE_PORT``, by default the other loopback name, so it is a different
host to any client). With ``--ready-file`` the bases and pid are written as JSON once all serve.
SIGTERM or SIGINT stops the servers and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from eva00.simulator import company
from eva00.simulator.options import OptionError, SimOptions, WebhookOptions, parse_window
from eva00.simulator.web import Request, Response, SimServer, error


def build_parser() -> argparse.ArgumentParser:
    d = SimOptions()
    p = argparse.ArgumentParser(prog="eva00 sim", description="Run the Procore simulator (API, login "
                                "and storage hosts, control API under /_sim). See eva00/simulator/README.md.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default=d.host, help="loopback address to bind both servers to")
    p.add_argument("--port", type=int, default=d.port, help="API and login port (0 = any free port)")
    p.add_argument("--storage-port", type=int, default=d.storage_port,
                   help="storage host port (0 = any free port)")
    p.add_argument("--file-port", type=int, default=d.file_port,
                   help="file host port, where record file URLs point (0 = any free port)")
    p.add_argument("--storage-link-host", default="",
                   help="host name in signed storage URLs (default: the other loopback name than --host)")
    p.add_argument("--company-id", type=int, default=d.company_id, help="the one company's id")
    p.add_argument("--client-id", default=d.client_id, help="the OAuth client id accepted")
    p.add_argument("--client-secret", default=d.client_secret, help="the OAuth client secret accepted")
    p.add_argument("--projects", type=int, default=d.projects, help="projects generated")
    p.add_argument("--items", type=int, default=d.items, help="records generated in total (about)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the data generator")
    p.add_argument("--anchor-epoch", type=int, default=0,
                   help="'now' of the generated data, epoch seconds (0 = today 00:00 UTC)")
    p.add_argument("--active-share", type=float, default=d.active_share,
                   help="share of the projects that are busy (company.py; 1 = all alike)")
    p.add_argument("--inactive-share", type=float, default=d.inactive_share,
                   help="share of the projects closed (active: false) at start")
    p.add_argument("--active-churn-share", type=float, default=d.active_churn_share,
                   help="share of the churn that lands on the busy projects (the rest on quiet ones)")
    p.add_argument("--time-scale", type=float, default=d.time_scale,
                   help="Procore's clock this many times faster: every rate window this many times shorter")
    p.add_argument("--churn", type=float, default=0.0, help="mutations per second in the background")
    p.add_argument("--rate-limit", default="100/60",
                   help="N/WINDOW_S sliding window; 'off' disables all limits")
    p.add_argument("--spike", default="25/10", help="N/WINDOW_S spike window ('off' to disable)")
    p.add_argument("--hourly", default="off", help="N requests per 3600 s ('off' to disable)")
    p.add_argument("--drop-connection-ratio", type=float, default=0.0,
                   help="share of over-limit requests answered by dropping the connection instead of 429")
    p.add_argument("--lenient", action="store_true",
                   help="accept what third-party clients send (no company header, token in query, Basic "
                        "client auth, any Accept)")
    p.add_argument("--token-lifetime-s", type=float, default=d.token_lifetime_s, help="access token lifetime")
    p.add_argument("--refresh-idle-expiry-s", type=float, default=None,
                   help="refresh tokens unused this long expire (default: never)")
    p.add_argument("--auto-approve", action="store_true",
                   help="the authorize page approves at once (tests); default shows the approval form")
    p.add_argument("--file-size-bytes", type=int, default=d.file_size_bytes,
                   help="typical file size (each file is 0.5x-1.5x of it; thumbnails 5%%)")
    p.add_argument("--signed-url-ttl-s", type=float, default=d.signed_url_ttl_s, help="signed URL lifetime")
    p.add_argument("--webhook-retry-base-s", type=float, default=WebhookOptions().retry_base_s,
                   help="first retry delay of a failed webhook delivery (doubles, capped)")
    p.add_argument("--tools-off", default="",
                   help="tools switched off per project: TOOL[@WHICH],... with WHICH all, N%% of the projects"
                        " (stable choice) or ID+ID, e.g. 'daily_logs,meetings@10%%' (see tools.py)")
    p.add_argument("--tools-off-status", type=int, choices=(403, 404), default=d.tools_off_status,
                   help="what a switched-off tool answers (Procore answers 403; 404 is also seen)")
    p.add_argument("--clock-offset-s", type=float, default=0.0,
                   help="the server's clock runs this far ahead of the host's (negative: behind)")
    p.add_argument("--ready-file", type=Path, default=None,
                   help="write {api_base, login_base, storage_base, pid} as JSON here once serving")
    p.add_argument("--log-level", default="INFO", help="logging level")
    return p


def options_from(args: argparse.Namespace) -> SimOptions:
    rate_off = str(args.rate_limit).strip().lower() == "off"
    options = SimOptions(
        host=args.host, port=args.port, storage_port=args.storage_port, file_port=args.file_port,
        company_id=args.company_id,
        client_id=args.client_id, client_secret=args.client_secret, projects=args.projects,
        items=args.items, seed=args.seed, file_size_bytes=args.file_size_bytes,
        anchor_epoch=args.anchor_epoch,
        lenient=args.lenient, token_lifetime_s=args.token_lifetime_s,
        refresh_idle_expiry_s=args.refresh_idle_expiry_s, auto_approve=args.auto_approve,
        rate_limit=None if rate_off else parse_window(args.rate_limit, "rate_limit"),
        spike=None if rate_off else parse_window(args.spike, "spike"),
        hourly=None if rate_off or args.hourly == "off" else parse_window(f"{args.hourly}/3600", "hourly"),
        drop_connection_ratio=args.drop_connection_ratio, signed_url_ttl_s=args.signed_url_ttl_s,
        storage_link_host=args.storage_link_host, churn_per_s=args.churn,
        clock_offset_s=args.clock_offset_s, tools_off=args.tools_off,
        tools_off_status=args.tools_off_status, active_share=args.active_share,
        inactive_share=args.inactive_share, active_churn_share=args.active_churn_share,
        time_scale=args.time_scale)
    company.check(options)
    company.scale_time(options)
    options.webhooks.retry_base_s = args.webhook_retry_base_s
    if options.projects < 1 or options.items < 0 or options.file_size_bytes < 0:
        raise OptionError("--projects must be at least 1, --items and --file-size-bytes not negative")
    return options


def main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = options_from(args)
    except OptionError as exc:
        print(f"eva00 sim: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        api_server = SimServer((options.host, options.port), _starting, _unrecorded)
        storage_server = SimServer((options.host, options.storage_port), _starting, _unrecorded)
        file_server = SimServer((options.host, options.file_port), _starting, _unrecorded)
    except OSError as exc:
        print(f"eva00 sim: cannot listen: {exc}", file=sys.stderr)
        return 3
    return _serve(options, (api_server, storage_server, file_server), args.ready_file, started)


def _starting(req: Request) -> Response:
    return error(503, "starting")


def _unrecorded(req: Request, response: Response, sent: int) -> None:
    return None


def _serve(options: SimOptions, servers: tuple[SimServer, SimServer, SimServer], ready: Path | None,
           started: float) -> int:
    from eva00.simulator.app import Simulator

    api_server, storage_server, file_server = servers
    api_base = f"http://{options.host}:{api_server.port}"
    storage_base = f"http://{options.link_host()}:{storage_server.port}"
    file_base = f"http://{options.host}:{file_server.port}"
    try:
        sim = Simulator(options, api_base, storage_base, file_base)
    except OptionError as exc:  # a value only the generated data can check (--tools-off ids)
        print(f"eva00 sim: {exc}", file=sys.stderr)
        for server in (api_server, storage_server, file_server):
            server.server_close()
        return 2
    api_server.handler, api_server.recorder = sim.handle_api, sim.record_api
    api_server.clock = storage_server.clock = file_server.clock = sim.now
    storage_server.handler, storage_server.recorder = sim.handle_storage, sim.record_storage
    file_server.handler, file_server.recorder = sim.handle_files, sim.record_files
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
               for s in servers]
    for thread in threads:
        thread.start()
    sim.start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if ready is not None:
        info = {"api_base": api_base, "login_base": api_base, "storage_base": storage_base,
                "file_base": file_base, "pid": os.getpid()}
        tmp = ready.with_suffix(ready.suffix + ".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(ready)
    logging.getLogger("eva00.simulator").info(
        "serving API and login on %s, files on %s, storage on %s: %d projects, %d records, %d files, "
        "ready in %.2f s", api_base, file_base, storage_base, options.projects, sim.store.count(),
        len(sim.blobs), time.monotonic() - started)
    stop.wait()
    sim.stop()
    # All servers at once: each shutdown waits out its serve loop's poll interval.
    closing = [threading.Thread(target=s.shutdown) for s in servers]
    for thread in closing:
        thread.start()
    for thread in closing:
        thread.join()
    for server in servers:
        server.server_close()
    return 0
