"""supervisord program: the webhook listener (POST /webhooks/procore, GET /healthz), meant to sit
behind a Cloudflare Tunnel (docs/cloudflare-tunnel.md). See eva00/webhooks/intake.py for what an
answered delivery guarantees."""

from eva00.config import load_or_exit
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import on_terminate
from eva00.webhooks.server import build_listener

settings = load_or_exit()
setup_logging("webhook", settings)
listener = build_listener(settings)
on_terminate(listener.stop)
listener.run()
