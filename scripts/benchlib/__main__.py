# benchlib/__main__.py - `python3 -m benchlib [flags]` (what scripts/bench runs).
import sys

from .cli import main

sys.exit(main())
