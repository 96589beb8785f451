"""The ``barmap`` command: the parser (main), the VM options declared once (options, shared
with the pytest plugin), one module per command; the only place an argparse Namespace exists.

May import: everything up to runs.
"""
