"""``python -m mechlib.teaching.grading``: the same as ``mechlib-grade``."""
import sys

from mechlib.teaching.grading.cli import main

sys.exit(main())
