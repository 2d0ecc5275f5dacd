"""An async client for Vobiz's REST API: place and hang up calls, press keys, start and stop
audio streams; typed results, retries on 429 and 5xx. Point ``base_url`` at a local carrier
(``vobiz-stream carrier``) to test against one machine."""

from vobiz_stream.rest.client import DEFAULT_BASE_URL, VobizClient
from vobiz_stream.rest.results import (
    CallPlaced,
    LiveCall,
    PageMeta,
    StreamCreated,
    StreamInfo,
    StreamPage,
    VobizApiError,
)
from vobiz_stream.rest.retry import RetryPolicy

__all__ = [
    "DEFAULT_BASE_URL",
    "CallPlaced",
    "LiveCall",
    "PageMeta",
    "RetryPolicy",
    "StreamCreated",
    "StreamInfo",
    "StreamPage",
    "VobizApiError",
    "VobizClient",
]
