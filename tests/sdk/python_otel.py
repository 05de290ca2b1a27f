"""Exports a small OpenTelemetry span tree with a real Python exporter.

Which exporter (LOGGATE_TEST_OTEL_EXPORTER):
  braintrust   braintrust[otel]'s BraintrustSpanProcessor, configured as a
               user would: BRAINTRUST_API_KEY, BRAINTRUST_API_URL and the
               parent from BRAINTRUST_PARENT, or from the constructor's
               `parent=` when LOGGATE_TEST_OTEL_PARENT_ARG is set.
  otlp-proto   the plain opentelemetry-exporter-otlp-proto-http exporter
  otlp-json    the plain opentelemetry-exporter-otlp-json-http exporter
The plain exporters post to {BRAINTRUST_API_URL}/otel/v1/traces with
`Authorization: Bearer {BRAINTRUST_API_KEY}` and, when
LOGGATE_TEST_OTEL_HEADER_PARENT is set, `x-bt-parent`. Compression: the
exporters' own OTEL_EXPORTER_OTLP_TRACES_COMPRESSION (none, gzip, deflate).

LOGGATE_TEST_OTEL_STAMP: a parent every span carries as its own
`braintrust.parent` attribute (for the braintrust processor: put into the
OTel baggage, where the processor finds it and stamps the spans).

Every request the exporter puts on the wire (URL, headers, the exact body
bytes) is written to LOGGATE_TEST_WIRE_DIR as NNN.json + NNN.body.

The last stdout line is a JSON report:
  {"ok": bool, "spans": [{"name", "trace_id", "span_id"}...],
   "exports": ["SUCCESS"|"FAILURE"...], "flushed": bool, "errors": [str...]}
Exit 0 when every export succeeded, 2 otherwise.
"""

import json
import logging
import os
import sys
import traceback

exporter_kind = os.environ.get("LOGGATE_TEST_OTEL_EXPORTER", "braintrust")
wire_dir = os.environ.get("LOGGATE_TEST_WIRE_DIR")
errors = []
exports = []
spans = []
flushed = False


class Capture(logging.Handler):
    """Keeps what the exporters log at WARNING and above (a failed export is
    only logged: `Failed to export spans batch code: 403, reason: …`)."""

    def emit(self, record):
        errors.append(f"{record.name}: {record.getMessage()}")


logging.getLogger("opentelemetry").addHandler(Capture(level=logging.WARNING))
logging.getLogger("braintrust").addHandler(Capture(level=logging.WARNING))


def record_wire(transport_cls):
    """Wraps an OTLP HTTP transport so that every request it sends is dumped."""
    original = transport_cls.request

    def request(self, method, url, headers=None, data=None, **kwargs):
        result = original(self, method, url, headers=headers, data=data, **kwargs)
        if wire_dir:
            os.makedirs(wire_dir, exist_ok=True)
            n = len([f for f in os.listdir(wire_dir) if f.endswith(".json")])
            with open(os.path.join(wire_dir, f"{n:03}.body"), "wb") as f:
                f.write(bytes(data or b""))
            meta = {
                "method": method,
                "url": url,
                "headers": dict(headers or {}),
                "status": getattr(result, "status_code", None),
            }
            with open(os.path.join(wire_dir, f"{n:03}.json"), "w") as f:
                json.dump(meta, f)
        return result

    transport_cls.request = request


try:
    from opentelemetry import baggage, context, trace
    from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    record_wire(RequestsHTTPTransport)
    record_wire(Urllib3HTTPTransport)

    provider = TracerProvider(resource=Resource.create({"service.name": "loggate-sdk-test"}))
    stamp = os.environ.get("LOGGATE_TEST_OTEL_STAMP")
    api_url = os.environ["BRAINTRUST_API_URL"].rstrip("/")

    def counting(exporter):
        """Records the result of every export the processor makes."""
        original = exporter.export

        def export(batch):
            result = original(batch)
            exports.append("SUCCESS" if result == SpanExportResult.SUCCESS else "FAILURE")
            return result

        exporter.export = export
        return exporter

    if exporter_kind == "braintrust":
        from braintrust.otel import BraintrustSpanProcessor

        parent_arg = os.environ.get("LOGGATE_TEST_OTEL_PARENT_ARG")
        processor = BraintrustSpanProcessor(parent=parent_arg) if parent_arg else BraintrustSpanProcessor()
        counting(processor.exporter)
        provider.add_span_processor(processor)
    else:
        headers = {"Authorization": f"Bearer {os.environ['BRAINTRUST_API_KEY']}"}
        header_parent = os.environ.get("LOGGATE_TEST_OTEL_HEADER_PARENT")
        if header_parent:
            headers["x-bt-parent"] = header_parent
        endpoint = f"{api_url}/otel/v1/traces"
        if exporter_kind == "otlp-proto":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        elif exporter_kind == "otlp-json":
            from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
        else:
            raise ValueError(f"unknown LOGGATE_TEST_OTEL_EXPORTER {exporter_kind!r}")
        exporter = counting(OTLPSpanExporter(endpoint=endpoint, headers=headers))
        # One export for the whole tree at force_flush, as the braintrust
        # processor's own BatchSpanProcessor does.
        provider.add_span_processor(BatchSpanProcessor(exporter))

    tracer = provider.get_tracer("loggate.sdk.test")
    token = None
    if stamp and exporter_kind == "braintrust":
        token = context.attach(baggage.set_baggage("braintrust.parent", stamp))

    with tracer.start_as_current_span("checkout-request") as root:
        root.set_attribute("gen_ai.prompt", "What does the cart cost?")
        root.set_attribute("gen_ai.completion", "3")
        root.set_attribute("braintrust.input_json", json.dumps({"cart": ["apple", "pear"]}))
        if stamp and exporter_kind != "braintrust":
            root.set_attribute("braintrust.parent", stamp)
        with tracer.start_as_current_span("price-lookup") as child:
            child.set_attribute("gen_ai.request.model", "price-model")
            child.set_attribute("sku.list", ["apple", "pear"])
            child.set_attribute("sku.count", 2)
            if stamp and exporter_kind != "braintrust":
                child.set_attribute("braintrust.parent", stamp)
            spans.append(
                {"name": "price-lookup", "trace_id": f"{child.get_span_context().trace_id:032x}",
                 "span_id": f"{child.get_span_context().span_id:016x}"}
            )
        spans.insert(
            0,
            {"name": "checkout-request", "trace_id": f"{root.get_span_context().trace_id:032x}",
             "span_id": f"{root.get_span_context().span_id:016x}"},
        )
    if token is not None:
        context.detach(token)

    flushed = bool(provider.force_flush(30_000))
except BaseException as e:  # noqa: BLE001 - report whatever the SDK raised
    errors.append("".join(traceback.format_exception(e)))

ok = flushed and bool(exports) and all(r == "SUCCESS" for r in exports) and not errors
print(json.dumps({"ok": ok, "spans": spans, "exports": exports, "flushed": flushed, "errors": errors}))
sys.stdout.flush()
os._exit(0 if ok else 2)
