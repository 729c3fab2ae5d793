"""supervisord program: the OAuth keepalive (eva00/stages/keepalive.py). Renews the grant every
EVA00_KEEPALIVE_INTERVAL_S regardless of sync activity and ahead of expiry; SIGTERM exits 0."""

from eva00.procore import build_authenticator
from eva00.runtime.program import Program, run_program
from eva00.stages.keepalive import Keepalive


def main(program: Program) -> None:
    interval_s = program.settings.keepalive_interval_s
    Keepalive(build_authenticator(program.settings, program.redis, program.pool), interval_s=interval_s,
              ahead_s=min(300.0, interval_s)).run(program.stop)


run_program("keepalive", main)
