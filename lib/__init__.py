"""The Operations service, by layer (imports flow one way, down this list):

- ``lib.tools``: local tools, never deployed (dev tokens, the local stack,
  the CLI, the invariant checker);
- ``lib.edge``: the HTTP edge (routes, bearer tokens, policy, system
  parameters, the web console);
- ``lib.jobs``: the job runtime (worker, worker instance, job context, sweep);
- ``lib.kinds``: the registry of operation kinds, the extension point;
- ``lib.core``: the operations core (settings, errors, records, use cases,
  Firestore, Pub/Sub, telemetry).

``tests/unit/test_layers.py`` keeps it so.
"""
