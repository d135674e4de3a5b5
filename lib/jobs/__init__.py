"""The job runtime: the worker that claims and runs operations, the
per-process instance that keeps their leases and clocks, the job context
handlers see, and the recovery sweep. Imports ``lib.core`` and ``lib.kinds``.
"""
