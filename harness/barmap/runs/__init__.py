"""Whole runs over guests: the atlas and its report, the benchmarks, the demo.

May import: everything up to debug.
"""
