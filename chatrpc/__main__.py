"""``python -m chatrpc``: the server (``python -m chatrpc.cli_client`` is the client)."""

import sys

from .cli_server import main

sys.exit(main())
