"""The export stage: one ONNX graph from raw audio to class scores, fp32 and int8, verified.

Nothing here is imported by this ``__init__``: the device side (``predict``, ``bundle``) must load
without torch, while the exporter itself needs it.
"""
