"""The ``eva00`` command line: one module per command group (``main`` dispatches; ``stack``, ``db``,
``sync``, ``full_sync``, ``auth``, ``webhooks``, ``pdf_import``, ``check``, ``status``, ``search``,
``archive``). Commands only parse arguments and call the library; behaviour lives in the
packages they call.

The CLI may import any package of eva00 (it is the top of the tree), including proof and the
simulator's command line; nothing imports the CLI.
"""
