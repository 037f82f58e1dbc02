"""``python -m fastapi_session_deps``: the command line (see `fastapi_session_deps.cli`)."""

from .cli import main

raise SystemExit(main())
