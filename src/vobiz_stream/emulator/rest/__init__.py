"""A local Vobiz: the REST API apps call to place calls and start streams, over emulated calls.

:func:`run_carrier` serves it (``vobiz-stream carrier``); :mod:`~vobiz_stream.emulator.rest.shapes`
holds the API's request and answer shapes, :mod:`~vobiz_stream.emulator.rest.calls` its calls,
:mod:`~vobiz_stream.emulator.rest.app` its routes.
"""

from vobiz_stream.emulator.rest.server import CarrierSettings, run_carrier

__all__ = ["CarrierSettings", "run_carrier"]
