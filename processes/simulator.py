"""supervisord program: the embedded Procore simulator (the default until PROCORE_CLIENT_ID is set)."""

from eva00.config import SIM_CLIENT_ID, SIM_CLIENT_SECRET, SIM_COMPANY_ID, load_or_exit
from eva00.simulator.cli import main

settings = load_or_exit()
raise SystemExit(main([
    "--port", str(settings.sim_port),
    "--storage-port", str(settings.sim_storage_port),
    "--file-port", str(settings.sim_file_port),
    "--company-id", str(SIM_COMPANY_ID),
    "--client-id", SIM_CLIENT_ID,
    "--client-secret", SIM_CLIENT_SECRET,
    "--projects", str(settings.sim_projects),
    "--items", str(settings.sim_items),
    "--rate-limit", settings.sim_rate_limit,
    "--spike", settings.sim_spike,
    "--clock-offset-s", str(settings.sim_clock_offset_s),
    "--tools-off", settings.sim_tools_off,
]))
