// Logs a few rows and a span tree with the real Braintrust JS SDK.
//
// Configured only through the environment, as a user would:
// BRAINTRUST_API_KEY, BRAINTRUST_APP_URL, optionally BRAINTRUST_API_URL.
// The project name comes from LOGGATE_TEST_PROJECT (default "checkout").
// The SDK is loaded from LOGGATE_TEST_NODE_MODULES (default: next to this file).
//
// The last stdout line is a JSON report:
//   {"ok": bool, "logged": [{"id", "input", "output"}...], "errors": [str...]}
// Exit 0 when every flush succeeded, 2 when the SDK reported an error
// (through the logger state's onFlushError; flush() itself never throws).

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.LOGGATE_TEST_NODE_MODULES || path.join(here, "node_modules");
const require = createRequire(path.join(nodeModules, "_loggate_resolve_base.js"));
const { BraintrustState, initLogger } = require("braintrust");

const project = process.env.LOGGATE_TEST_PROJECT || "checkout";
const logged = [];
const errors = [];
const describe = (e) => (e && e.stack ? `${e.stack}${e.data ? `\n${e.data}` : ""}` : String(e));

try {
  const state = new BraintrustState({ onFlushError: (e) => errors.push(describe(e)) });
  const logger = initLogger({ projectName: project, state });

  for (let i = 0; i < 3; i++) {
    const row = { input: { question: `q${i}`, n: i }, output: { answer: `a${i}` } };
    const id = logger.log({ ...row, metadata: { sdk: "js" } });
    logged.push({ id, ...row });
  }

  await logger.traced(
    async (parent) => {
      parent.log({ input: { cart: ["apple", "pear"] }, output: { total: 3 } });
      logged.push({ id: parent.id, input: { cart: ["apple", "pear"] }, output: { total: 3 } });
      await parent.traced(
        async (child) => {
          child.log({ input: { sku: "apple" }, output: { price: 1 } });
          logged.push({ id: child.id, input: { sku: "apple" }, output: { price: 1 } });
        },
        { name: "price-lookup" },
      );
    },
    { name: "checkout-request" },
  );

  await logger.flush();
} catch (e) {
  errors.push(describe(e));
}

console.log(JSON.stringify({ ok: errors.length === 0, logged, errors }));
process.exit(errors.length === 0 ? 0 : 2);
