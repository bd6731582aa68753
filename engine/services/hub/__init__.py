"""Getting Nemotron weights onto the machine: catalog, hardware, fit estimate, downloads, library.

Qt-free; the wizard and the CLI both drive these modules.
"""
