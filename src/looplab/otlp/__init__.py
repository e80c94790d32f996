"""OpenTelemetry ingest: OTLP/HTTP trace exports (protobuf or JSON) stored as looplab traces.

``decode`` turns a request body into an ``ExportTraceServiceRequest``; ``mapping`` (pure) turns
its spans into looplab span rows, reading the OpenTelemetry GenAI semantic conventions and
OpenInference's attributes (keys in ``attributes``); ``store`` writes them and keeps each
trace's totals right across batches; ``http`` serves ``POST /v1/traces``.
"""
