"""supervisord program: the differ (fetched pages -> replica rows, history, cursors, deletes)."""

from eva00 import keys
from eva00.runtime.program import run_stage
from eva00.stages.differ import Differ
from eva00.stages.middleware import differ_middleware

run_stage("differ", [(keys.STREAM_PAGES, keys.GROUP_DIFFERS)],
          lambda program: Differ(program.settings.mass_delete_ratio),
          middleware=lambda program, _differ: differ_middleware(program.redis))
