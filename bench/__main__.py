"""``python -m bench`` runs every benchmark."""

import sys

from bench.array_calls import main

sys.exit(main())
