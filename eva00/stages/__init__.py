"""One module per supervisord program that is a stage of the pipeline.

scheduler -> fetcher -> differ -> downloader -> thumbnailer / text_extractor, plus keepalive
(the OAuth token), monitor (alerts) and supervisor_listener (FATAL programs). The webhook listener
lives in ``eva00.webhooks``. Each module's docstring states its delivery guarantee.
``middleware`` is not a stage: it wires the middleware each stage runs around its handler and is
the one module here that may import several stages.

A stage may import the base modules, runtime, procore, replica, fullsync, webhooks' shared pieces
and pdf_import; never another stage, and never proof, cli or the simulator.
"""
