"""A faithful Procore simulator: the embedded default and the double every test talks to.

`eva00 sim` (or `python -m eva00.simulator`) starts it; README.md in this folder documents its
paths, its control API under ``/_sim`` and every switch.

It imports nothing from the rest of eva00 (an import-linter contract holds it): its resource
catalogue and its canonical hash are its own, written from Procore's resources and the documented
hash rule, so tests comparing them with the sync's catch a mistake on either side instead of
sharing it. Modules, one concept each:

- catalogue: the Procore resources served (kind, company or project level, webhook name)
- options: the run-time options (what the CLI and ``/_sim/config`` set)
- blobs: deterministic files (PDF, JPEG, PNG) generated in blocks, any size, constant memory
- records / generator: entity payloads and the seeded data set
- store: records, files and their ground truth; truth: the canonical payload hash; mutations
- state: what the simulator holds; app: the gatekeepers every API request passes, in order
- oauth, ratelimit, faults, ledger: those gatekeepers' own state
- scopes: which company or project a request may see
- listing: pages, filters and headers; api: Procore's paths; storage: the signed-URL host
- webhooks, churn: change over time and its deliveries; control: ``/_sim``
- server / cli: the HTTP servers and the command line; testing: the subprocess test helper
"""
