"""Getting and laying out the artifacts: paths, the private apt client, fetches, extractors.

Standard library only, so scripts run its modules before the venv exists.  May import:
the leaves (errors).
"""
