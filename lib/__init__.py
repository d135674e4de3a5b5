"""The Operations service: routes, auth, store, use cases and the worker."""
