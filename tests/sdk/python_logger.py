"""Logs a few rows and a span tree with the real Braintrust Python SDK.

Configured only through the environment, as a user would:
BRAINTRUST_API_KEY, BRAINTRUST_APP_URL, optionally BRAINTRUST_API_URL.
The project name comes from LOGGATE_TEST_PROJECT (default "checkout").

The last stdout line is a JSON report:
  {"ok": bool, "logged": [{"id", "input", "output"}...], "errors": [str...]}
Exit 0 when flush() succeeded, 2 when the SDK raised (run with
BRAINTRUST_SYNC_FLUSH=1 so that failed requests raise from flush()).
"""

import json
import os
import sys
import traceback

import braintrust

project = os.environ.get("LOGGATE_TEST_PROJECT", "checkout")
logged = []
errors = []

try:
    logger = braintrust.init_logger(project=project)

    for i in range(3):
        row = {"input": {"question": f"q{i}", "n": i}, "output": {"answer": f"a{i}"}}
        row_id = logger.log(input=row["input"], output=row["output"], metadata={"sdk": "python"})
        logged.append({"id": row_id, **row})

    with logger.start_span(name="checkout-request") as parent:
        parent.log(input={"cart": ["apple", "pear"]}, output={"total": 3})
        logged.append({"id": parent.id, "input": {"cart": ["apple", "pear"]}, "output": {"total": 3}})
        with parent.start_span(name="price-lookup") as child:
            child.log(input={"sku": "apple"}, output={"price": 1})
            logged.append({"id": child.id, "input": {"sku": "apple"}, "output": {"price": 1}})

    logger.flush()
except BaseException as e:  # noqa: BLE001 - report whatever the SDK raised
    errors.append("".join(traceback.format_exception(e)))

print(json.dumps({"ok": not errors, "logged": logged, "errors": errors}))
sys.stdout.flush()
# Skip the SDK's atexit flush: there is nothing left to send, and a failed
# retry there would only add noise.
os._exit(0 if not errors else 2)
