"""Local tools, never deployed: the dev token issuer, the local stack,
the CLI and the invariant checker."""
