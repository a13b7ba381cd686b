"""The embedded sandbox marketplace: a Backbox model, an HTTP-shaped app, a server and an
in-process transport (see docs/ARCHITECTURE.md, "Sandbox")."""
