"""An app container's view of credsidecar's IMDS endpoint, through boto3.

Only the environment says where IMDS is (AWS_EC2_METADATA_SERVICE_ENDPOINT); the caller points
AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE at /dev/null and HOME at an empty directory, so
the default chain can only find the instance-metadata provider. Prints one JSON line: the
provider boto3 chose, the region it found in IMDS, the expiry, the key id's last 4 characters
and, when EXPECT_CREDS_SHA256 is set, whether the key, secret and token match it. Never prints
a secret. With E2E_ENDPOINT set it also calls GetCallerIdentity there, and with E2E_BUCKET and
E2E_KEY too, PutObject of a small object (path-style) and prints its ETag. Exits 1 on any error.
"""
import hashlib
import json
import os
import sys

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import IMDSRegionProvider


def main() -> int:
    session = boto3.session.Session()
    creds = session.get_credentials()
    if creds is None:
        print(json.dumps({"error": "NoCredentials"}))
        return 1
    frozen = creds.get_frozen_credentials()
    out = {
        "provider": creds.method,
        # The region botocore's IMDS region provider finds (used with defaults_mode=auto).
        "region": session.region_name or IMDSRegionProvider(botocore.session.get_session()).provide(),
        "expiration": creds._expiry_time.strftime("%Y-%m-%dT%H:%M:%SZ") if creds._expiry_time else None,
        "key_id_last4": frozen.access_key[-4:],
    }
    expect = os.environ.get("EXPECT_CREDS_SHA256")
    if expect:
        got = "\n".join([frozen.access_key, frozen.secret_key, frozen.token or ""])
        out["creds_match"] = hashlib.sha256(got.encode()).hexdigest() == expect
    endpoint = os.environ.get("E2E_ENDPOINT")
    if endpoint:
        cfg = Config(retries={"max_attempts": 1})
        try:
            # The region instance metadata gave, as an app without AWS_REGION would use it.
            region = out["region"]
            ident = session.client("sts", endpoint_url=endpoint, region_name=region, config=cfg).get_caller_identity()
            bucket, key = os.environ.get("E2E_BUCKET"), os.environ.get("E2E_KEY")
            if bucket and key:
                s3cfg = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
                put = session.client("s3", endpoint_url=endpoint, region_name=region, config=s3cfg).put_object(
                    Bucket=bucket, Key=key, Body=b"written by boto3 through credsidecar's IMDS\n")
                out["etag"] = put["ETag"]
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
