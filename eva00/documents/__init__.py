"""Reading untrusted documents (PDFs and images from Procore) with PyMuPDF, only ever in a
sandboxed child process: `sandbox.py` (the parent's side: start, limits, kill, one-line reasons)
and `child.py` (the child's side: rlimits, one JSON answer) are shared by every worker, this
package's `worker.py` (thumbnails: `thumbnail.py`, text: `text.py`) and PDF import's. Stages call
`isolated.py`, which never imports PyMuPDF.

Imports only the base modules; never a stage, ops, proof or the simulator.
"""
