"""An app container's view of credsidecar's container-credentials endpoint, through boto3's
default chain.

The caller sets only AWS_CONTAINER_CREDENTIALS_FULL_URI, the Authorization token (as
AWS_CONTAINER_AUTHORIZATION_TOKEN, the legacy value form, or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE),
AWS_DEFAULT_REGION, and AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE pointing nowhere. With
E2E_ENDPOINT, E2E_BUCKET and E2E_KEY set it calls GetCallerIdentity and PutObject (path-style)
there. Prints one JSON line: the provider boto3 chose, the key id's last 4 characters, the
caller's ARN and account and the object's ETag. Never prints a secret. Exits 1 on any error.
"""
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    session = boto3.session.Session()
    out = {}
    try:
        creds = session.get_credentials()
        if creds is None:
            print(json.dumps({"error": "NoCredentials"}))
            return 1
        frozen = creds.get_frozen_credentials()
        out = {"provider": creds.method, "key_id_last4": frozen.access_key[-4:]}
        endpoint = os.environ["E2E_ENDPOINT"]
        cfg = Config(retries={"max_attempts": 1})
        ident = session.client("sts", endpoint_url=endpoint, config=cfg).get_caller_identity()
        out["arn"], out["account"] = ident["Arn"], ident["Account"]
        s3cfg = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
        put = session.client("s3", endpoint_url=endpoint, config=s3cfg).put_object(
            Bucket=os.environ["E2E_BUCKET"], Key=os.environ["E2E_KEY"],
            Body=b"written by boto3 through credsidecar's container endpoint\n")
        out["etag"] = put["ETag"]
    except (ClientError, BotoCoreError, KeyError) as err:
        out["error"] = getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__)
        out["message"] = str(err)[:300]
        print(json.dumps(out))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
