"""The operations core: settings, the error model, operation records, the
use cases and the adapters they use (Firestore, Pub/Sub, telemetry).

Imports nothing of ``lib.edge``, ``lib.jobs`` or ``lib.tools``.
"""
