"""An app container's view of credsidecar, through boto3's default credential chain.

Reads nothing but the environment (as a pod would), calls GetCallerIdentity and PutObject, and
prints one JSON line: the credential provider boto3 chose, the caller's ARN, the object's ETag and
the key id's last 4 characters (never the key or the token). Exits 1 on any error, printing one
JSON line with the AWS error code or the exception's name.
"""
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    endpoint = os.environ["E2E_ENDPOINT"]
    bucket = os.environ["E2E_BUCKET"]
    key = os.environ["E2E_KEY"]
    session = boto3.session.Session()
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    provider = ""
    try:
        # Resolving the chain can itself fail (endpoint down, 401): that is an error to report.
        creds = session.get_credentials()
        if creds is None:
            print(json.dumps({"error": "NoCredentials", "message": "boto3 found no credentials"}))
            return 1
        provider = creds.method
        frozen = creds.get_frozen_credentials()
        ident = session.client("sts", endpoint_url=endpoint, config=cfg).get_caller_identity()
        put = session.client("s3", endpoint_url=endpoint, config=cfg).put_object(
            Bucket=bucket, Key=key, Body=b"written by boto3 through credsidecar\n")
    except ClientError as err:
        print(json.dumps({"error": err.response["Error"]["Code"], "provider": provider,
                          "message": str(err)[:300]}))
        return 1
    except BotoCoreError as err:
        print(json.dumps({"error": type(err).__name__, "provider": provider, "message": str(err)[:300]}))
        return 1
    print(json.dumps({
        "provider": provider,
        "arn": ident["Arn"],
        "account": ident.get("Account", ""),
        "etag": put["ETag"],
        "key_id_last4": frozen.access_key[-4:],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
