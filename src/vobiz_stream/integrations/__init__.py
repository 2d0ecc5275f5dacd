"""Bridges to other frameworks, each behind its extra (``pip install 'vobiz-stream[pipecat]'``)."""
