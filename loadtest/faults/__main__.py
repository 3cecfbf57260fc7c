"""``python -m loadtest.faults``: see :mod:`loadtest.faults.report`."""

import sys

from loadtest.faults.report import main

sys.exit(main())
