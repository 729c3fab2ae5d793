"""Reading untrusted documents (PDFs and images from Procore) with PyMuPDF: what counts as an
unreadable file, shared by the stages that derive something from stored files (thumbnails, text).

Imports only the base modules; never a stage, ops, proof or the simulator.
"""
