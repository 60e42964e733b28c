"""An app's view of `sidecar credential-process`, through boto3.

The caller sets AWS_CONFIG_FILE to a config whose profile PROFILE has a credential_process
line, AWS_SHARED_CREDENTIALS_FILE to /dev/null and HOME to an empty directory. Prints one JSON
line: the provider boto3 chose, the expiry, the key id's last 4 characters and, when
EXPECT_CREDS_SHA256 is set, whether the key, secret and token match it. Never prints a secret.
With E2E_ENDPOINT set it also calls GetCallerIdentity there. Exits 1 on any error.
"""
import hashlib
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    try:
        session = boto3.session.Session(profile_name=os.environ["PROFILE"])
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds else None
    except BotoCoreError as err:
        print(json.dumps({"error": type(err).__name__, "message": str(err)[:300]}))
        return 1
    if frozen is None:
        print(json.dumps({"error": "NoCredentials"}))
        return 1
    out = {
        "provider": creds.method,
        "expiration": creds._expiry_time.strftime("%Y-%m-%dT%H:%M:%SZ") if creds._expiry_time else None,
        "key_id_last4": frozen.access_key[-4:],
        "account": frozen.account_id if hasattr(frozen, "account_id") else None,
    }
    expect = os.environ.get("EXPECT_CREDS_SHA256")
    if expect:
        got = "\n".join([frozen.access_key, frozen.secret_key, frozen.token or ""])
        out["creds_match"] = hashlib.sha256(got.encode()).hexdigest() == expect
    endpoint = os.environ.get("E2E_ENDPOINT")
    if endpoint:
        cfg = Config(retries={"max_attempts": 1})
        try:
            ident = session.client("sts", endpoint_url=endpoint, config=cfg).get_caller_identity()
        except (ClientError, BotoCoreError) as err:
            out["error"] = getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__)
            print(json.dumps(out))
            return 1
        out["arn"] = ident["Arn"]
        out["account"] = ident["Account"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
