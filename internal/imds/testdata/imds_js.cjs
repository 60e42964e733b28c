// An app container's view of credsidecar's IMDS endpoint, through the AWS SDK for JavaScript
// v3's fromInstanceMetadata (@aws-sdk/credential-providers). Only AWS_EC2_METADATA_SERVICE_ENDPOINT
// says where IMDS is. Prints one JSON line with the expiry, the key id's last 4 characters and,
// when EXPECT_CREDS_SHA256 is set, whether the key, secret and token match it; never a secret.
// With E2E_ENDPOINT (and AWS_REGION) set it also calls GetCallerIdentity there, and with E2E_BUCKET
// and E2E_KEY too, PutObject of a small object (path-style) and prints its ETag. Exits 1 on error.
"use strict";
const crypto = require("node:crypto");
const { fromInstanceMetadata } = require("@aws-sdk/credential-providers");

async function main() {
  const provider = fromInstanceMetadata({ timeout: 2000, maxRetries: 1 });
  const creds = await provider();
  const out = {
    provider: "fromInstanceMetadata",
    expiration: creds.expiration ? creds.expiration.toISOString().replace(/\.\d{3}Z$/, "Z") : null,
    key_id_last4: creds.accessKeyId.slice(-4),
    account: creds.accountId || null,
  };
  const expect = process.env.EXPECT_CREDS_SHA256;
  if (expect) {
    const got = [creds.accessKeyId, creds.secretAccessKey, creds.sessionToken || ""].join("\n");
    out.creds_match = crypto.createHash("sha256").update(got).digest("hex") === expect;
  }
  if (process.env.E2E_ENDPOINT) {
    const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");
    const sts = new STSClient({
      endpoint: process.env.E2E_ENDPOINT, region: process.env.AWS_REGION, credentials: provider, maxAttempts: 1,
    });
    const ident = await sts.send(new GetCallerIdentityCommand({}));
    out.arn = ident.Arn;
    out.account = ident.Account;
    if (process.env.E2E_BUCKET && process.env.E2E_KEY) {
      const { S3Client, PutObjectCommand } = require("@aws-sdk/client-s3");
      const s3 = new S3Client({
        endpoint: process.env.E2E_ENDPOINT, region: process.env.AWS_REGION, credentials: provider,
        forcePathStyle: true, maxAttempts: 1,
      });
      const put = await s3.send(new PutObjectCommand({
        Bucket: process.env.E2E_BUCKET, Key: process.env.E2E_KEY,
        Body: "written by the JavaScript SDK through credsidecar's IMDS\n",
      }));
      out.etag = put.ETag;
    }
  }
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.log(JSON.stringify({ error: err.name || "Error", message: String(err.message).slice(0, 300) }));
  process.exit(1);
});
