"""``python -m vobiz_stream`` is the ``vobiz-stream`` command."""

import sys

from vobiz_stream.cli import main

sys.exit(main())
