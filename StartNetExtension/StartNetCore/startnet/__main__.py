"""``python -m startnet`` runs the command line."""

from __future__ import annotations

import sys

from startnet.cli import main

sys.exit(main())
