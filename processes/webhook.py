"""supervisord program: the webhook listener (POST /webhooks/procore, GET /healthz), meant to sit
behind a Cloudflare Tunnel (docs/cloudflare-tunnel.md). See eva00/webhooks/intake.py for what an
answered delivery guarantees. It opens its own pool, sized to its worker threads."""

from eva00.runtime.process import on_terminate
from eva00.runtime.program import start_program
from eva00.webhooks.server import build_listener

listener = build_listener(start_program("webhook"))
on_terminate(listener.stop)
listener.run()
