// Exports a small OpenTelemetry span tree with @braintrust/otel's
// BraintrustSpanProcessor on the OpenTelemetry JS SDK (sdk-trace-base).
//
// Configured as a user would: BRAINTRUST_API_KEY, BRAINTRUST_API_URL and the
// parent from BRAINTRUST_PARENT, or from the constructor's `parent` option
// when LOGGATE_TEST_OTEL_PARENT_ARG is set. The packages are loaded from
// LOGGATE_TEST_NODE_MODULES (default: next to this file).
//
// Every request the exporter puts on the wire (URL, headers, the exact body
// bytes) is written to LOGGATE_TEST_WIRE_DIR as NNN.json + NNN.body.
//
// The last stdout line is a JSON report:
//   {"ok": bool, "spans": [{"name", "trace_id", "span_id"}...],
//    "exports": ["SUCCESS"|"FAILURE"...], "errors": [str...]}
// Exit 0 when every export succeeded, 2 otherwise.

import fs from "node:fs";
import http from "node:http";
import { createRequire, syncBuiltinESMExports } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.LOGGATE_TEST_NODE_MODULES || path.join(here, "node_modules");
const require = createRequire(path.join(nodeModules, "_loggate_resolve_base.js"));

const wireDir = process.env.LOGGATE_TEST_WIRE_DIR;
const spans = [];
const exports = [];
const errors = [];
const describe = (e) =>
  e && e.stack ? `${e.stack}${e.code ? `\ncode: ${e.code}` : ""}${e.data ? `\n${e.data}` : ""}` : String(e);

// Record what goes on the wire: the OTLP exporter sends with node:http's
// `request` (loaded lazily through import("http"), hence the ESM sync).
let sent = 0;
const originalRequest = http.request;
http.request = function (...args) {
  const req = originalRequest.apply(this, args);
  if (!wireDir) return req;
  const url = args.find((a) => a instanceof URL || typeof a === "string");
  const chunks = [];
  const write = req.write;
  req.write = function (chunk, ...rest) {
    chunks.push(Buffer.from(chunk));
    return write.call(this, chunk, ...rest);
  };
  const end = req.end;
  req.end = function (chunk, ...rest) {
    if (chunk && typeof chunk !== "function") chunks.push(Buffer.from(chunk));
    const n = String(sent++).padStart(3, "0");
    fs.mkdirSync(wireDir, { recursive: true });
    fs.writeFileSync(path.join(wireDir, `${n}.body`), Buffer.concat(chunks));
    fs.writeFileSync(
      path.join(wireDir, `${n}.json`),
      JSON.stringify({ method: req.method, url: String(url), headers: req.getHeaders() }),
    );
    return end.call(this, chunk, ...rest);
  };
  return req;
};
syncBuiltinESMExports();

try {
  const api = require("@opentelemetry/api");
  const { BasicTracerProvider } = require("@opentelemetry/sdk-trace-base");
  const { setGlobalErrorHandler } = require("@opentelemetry/core");
  const { BraintrustSpanProcessor } = require("@braintrust/otel");

  // A failed export is only reported through OTel's diagnostics.
  api.diag.setLogger(
    {
      error: (...a) => errors.push(a.map(describe).join(" ")),
      warn: (...a) => errors.push(a.map(describe).join(" ")),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    api.DiagLogLevel.WARN,
  );
  setGlobalErrorHandler((e) => errors.push(describe(e)));

  const parentArg = process.env.LOGGATE_TEST_OTEL_PARENT_ARG;
  const processor = new BraintrustSpanProcessor(parentArg ? { parent: parentArg } : {});
  // Count export results at the exporter the processor batches into.
  const exporter = processor.exporter;
  const exportOriginal = exporter.export.bind(exporter);
  exporter.export = (batch, done) =>
    exportOriginal(batch, (result) => {
      exports.push(result.code === 0 ? "SUCCESS" : "FAILURE");
      if (result.code !== 0 && result.error) errors.push(describe(result.error));
      done(result);
    });

  const provider = new BasicTracerProvider({ spanProcessors: [processor] });
  const tracer = provider.getTracer("loggate.sdk.test");

  const root = tracer.startSpan("checkout-request", {
    attributes: { "gen_ai.prompt": "What does the cart cost?", "gen_ai.completion": "3" },
  });
  const ctx = api.trace.setSpan(api.ROOT_CONTEXT, root);
  const child = tracer.startSpan(
    "price-lookup",
    { attributes: { "gen_ai.request.model": "price-model", "sku.list": ["apple", "pear"], "sku.count": 2 } },
    ctx,
  );
  child.end();
  root.end();
  for (const [name, s] of [["checkout-request", root], ["price-lookup", child]]) {
    spans.push({ name, trace_id: s.spanContext().traceId, span_id: s.spanContext().spanId });
  }

  await provider.forceFlush();
  await provider.shutdown();
} catch (e) {
  errors.push(describe(e));
}

const ok = exports.length > 0 && exports.every((r) => r === "SUCCESS") && errors.length === 0;
console.log(JSON.stringify({ ok, spans, exports, errors }));
process.exit(ok ? 0 : 2);
