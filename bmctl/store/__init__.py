"""Local SQLite storage: the database and its migrations (``db``), the request log (``logs``),
run records (``runs``) and the exclusive run lock (``lock``).

Import the submodules directly; this package imports nothing so that ``bmctl --help`` stays cheap."""
