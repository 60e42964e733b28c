// An app container's view of credsidecar, through the AWS SDK for JavaScript v3's default
// credential chain (fromNodeProviderChain). Reads nothing but the environment, calls
// GetCallerIdentity and PutObject, and prints one JSON line: the provider that produced the
// credentials, the caller's ARN, the ETag and the key id's last 4 characters (never the key or
// the token). Exits 1 on any error, printing one JSON line with the error's name.
"use strict";
const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");
const { S3Client, PutObjectCommand } = require("@aws-sdk/client-s3");

async function main() {
  const endpoint = process.env.E2E_ENDPOINT;
  const region = process.env.AWS_REGION;
  const sts = new STSClient({ endpoint, region, maxAttempts: 1 });
  const s3 = new S3Client({ endpoint, region, forcePathStyle: true, maxAttempts: 1 });
  // The clients resolve credentials through the same default chain; this call shows what it chose.
  const creds = await sts.config.credentials();
  const ident = await sts.send(new GetCallerIdentityCommand({}));
  const put = await s3.send(new PutObjectCommand({
    Bucket: process.env.E2E_BUCKET,
    Key: process.env.E2E_KEY,
    Body: "written by the JavaScript SDK v3 through credsidecar\n",
  }));
  console.log(JSON.stringify({
    // The SDK tags credentials with the features that produced them (CREDENTIALS_HTTP for the
    // container endpoint); there is no other provider name to read.
    provider: Object.keys(creds.$source || {}).sort().join(","),
    arn: ident.Arn,
    account: ident.Account || "",
    etag: put.ETag,
    key_id_last4: creds.accessKeyId.slice(-4),
  }));
}

main().catch((err) => {
  // Only the name and the message's start: SDK errors do not carry credentials, and the first
  // 300 characters are enough to tell what failed.
  console.log(JSON.stringify({ error: err.name || err.Code || "Error", message: String(err.message).slice(0, 300) }));
  process.exit(1);
});
