"""pytest: the plugin (options, fixtures, the evidence hook), its hook specs, JUnit.

May import: everything up to cli (the VM options are declared once, in cli.options).
"""
