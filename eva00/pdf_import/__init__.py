"""PDF import: Procore's exported RFI and submittal logs and submittal cover sheets.

Onboarding from PDF logs costs no API calls. ``eva00 import ...`` (cli/pdf_import.py) parses a file in a
sandboxed child process (`sandbox.py` runs `worker.py`: page, CPU, memory and wall-clock limits)
with PyMuPDF word extraction (`document.py`, `words.py`), finds the table by its header row
(`layout.py`), reads rows and Q&A blocks (`logs.py`) and types their values (`convert.py`,
`values.py`, `dates.py`) per kind (`rfi_log.py`, `submittal_log.py`, `cover_sheet.py`). Records
go to the replica with ``source = 'pdf_import'`` under synthetic negative ids (`ids.py`,
`store.py`), one transaction per file. When the API later returns the same item, the differ calls
`merge.adopt_imported` and the API row wins. Cover-sheet links are judged (`links.py`) by the SSRF
guard (`urlguard.py`) before the downloader is asked to fetch them.

Imports the base modules, runtime and replica; never a stage, ops, proof or the simulator.
"""
