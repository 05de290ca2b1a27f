"""Uploads a `braintrust.Attachment` with the real Braintrust Python SDK.

Configured only through the environment, as a user would:
BRAINTRUST_API_KEY, BRAINTRUST_APP_URL, optionally BRAINTRUST_API_URL and
BRAINTRUST_ORG_NAME (the organization the SDK picks from the login answer,
and so the `org_id` it sends).

LOGGATE_TEST_ATTACHMENT_MODE:
  log     init_logger(project=LOGGATE_TEST_PROJECT) and log one row whose
          input holds an Attachment; flush() uploads it after the row's
          /logs3 (POST /attachment, PUT to the signed URL, POST
          /attachment/status). Then read it back with ReadonlyAttachment
          (GET /attachment, then the download URL).
  upload  no logger: Attachment.upload() alone (login, POST /attachment,
          the PUT, POST /attachment/status), then ReadonlyAttachment's
          metadata (GET /attachment).

The last stdout line is a JSON report:
  {"ok": bool, "logged": [{"id"}], "reference": {…}, "upload_status": {…},
   "read_back": str|null, "metadata": {…}|null, "errors": [str...]}
Exit 0 when everything succeeded, 2 otherwise. Run with
BRAINTRUST_SYNC_FLUSH=1 so that failed uploads raise from flush().
"""

import json
import os
import sys
import traceback

import braintrust

mode = os.environ.get("LOGGATE_TEST_ATTACHMENT_MODE", "log")
project = os.environ.get("LOGGATE_TEST_PROJECT", "checkout")
CONTENT = b"loggate attachment test: receipt #42\n"

logged = []
errors = []
report = {"reference": None, "upload_status": None, "read_back": None, "metadata": None}

try:
    attachment = braintrust.Attachment(data=CONTENT, filename="receipt.txt", content_type="text/plain")
    report["reference"] = dict(attachment.reference)
    if mode == "log":
        logger = braintrust.init_logger(project=project)
        row_id = logger.log(input={"question": "What is on the receipt?", "receipt": attachment}, output="42")
        logged.append({"id": row_id})
        logger.flush()
        report["upload_status"] = dict(attachment.upload())  # already done: the flush's result
    elif mode == "upload":
        org_name = os.environ.get("BRAINTRUST_ORG_NAME")
        braintrust.login(org_name=org_name) if org_name else braintrust.login()
        try:
            report["upload_status"] = dict(attachment.upload())
        except Exception as e:  # noqa: BLE001
            errors.append("".join(traceback.format_exception(e)))
    else:
        raise ValueError(f"unknown LOGGATE_TEST_ATTACHMENT_MODE {mode!r}")

    if report["upload_status"] and report["upload_status"].get("upload_status") == "error":
        errors.append(f"upload failed: {report['upload_status'].get('error_message')}")

    readonly = braintrust.ReadonlyAttachment(attachment.reference)
    report["metadata"] = readonly.metadata()
    if mode == "log":
        report["read_back"] = readonly.data.decode("utf-8", "replace")
except BaseException as e:  # noqa: BLE001 - report whatever the SDK raised
    errors.append("".join(traceback.format_exception(e)))

ok = not errors
print(json.dumps({"ok": ok, "logged": logged, **report, "errors": errors}))
sys.stdout.flush()
os._exit(0 if ok else 2)
