"""An app container's view of credsidecar's credentials file, through boto3.

The caller sets AWS_SHARED_CREDENTIALS_FILE to the file, AWS_CONFIG_FILE to /dev/null and
HOME to an empty directory; PROFILE names the profile to load (default: the default chain's
choice). Prints one JSON line: the provider boto3 chose, the key id's last 4 characters and,
when EXPECT_CREDS_SHA256 is set, whether the key, secret and token match it. Never prints a
secret. With E2E_ENDPOINT set it also calls GetCallerIdentity there. Exits 1 on any error.
"""
import hashlib
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    session = boto3.session.Session(profile_name=os.environ.get("PROFILE") or None)
    creds = session.get_credentials()
    if creds is None:
        print(json.dumps({"error": "NoCredentials"}))
        return 1
    frozen = creds.get_frozen_credentials()
    out = {"provider": creds.method, "key_id_last4": frozen.access_key[-4:]}
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
