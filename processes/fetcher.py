"""supervisord program: a fetcher (poll jobs -> pages). It reads what EVA00_FETCHER_STREAMS names,
priority stream first; the program fetcher_priority reads only `priority`, so webhook and on-demand
jobs never wait behind a scheduled job that is itself waiting for the rate limiter."""

from eva00.procore import build_client
from eva00.runtime.program import run_stage
from eva00.stages.fetcher import Fetcher, fetcher_inputs
from eva00.stages.middleware import fetcher_middleware

run_stage("fetcher", fetcher_inputs,
          lambda program: Fetcher(program.settings,
                                  build_client(program.settings, program.redis, program.pool),
                                  program.redis, stop_requested=program.stopping),
          middleware=lambda program, fetcher: fetcher_middleware(program.redis, fetcher))
