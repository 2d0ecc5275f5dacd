"""``python -m vobiz_stream`` is the ``vobiz-stream`` command."""

import sys

from vobiz_stream.cli import main

if __name__ == "__main__":  # not when a spawned process (an uploader) imports it
    sys.exit(main())
