#!/usr/bin/env bash
# Put RDS's CA bundle into the RdsCaBundle layer's folder (see infra/aws/rds-ca/README.md).
# Exit 0 with a warning when offline: the build still succeeds, `make deploy` refuses later.
set -uo pipefail
DIR=$(cd "$(dirname "$0")/rds-ca" && pwd)
URL=${RDS_CA_BUNDLE_URL:-https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem}
if [ -s "$DIR/global-bundle.pem" ]; then
  echo "RDS CA bundle: $DIR/global-bundle.pem ($(grep -c 'BEGIN CERTIFICATE' "$DIR/global-bundle.pem") certificates)"
  exit 0
fi
if curl -fsS --max-time 20 -o "$DIR/global-bundle.pem.tmp" "$URL" \
  && grep -q 'BEGIN CERTIFICATE' "$DIR/global-bundle.pem.tmp"; then
  mv "$DIR/global-bundle.pem.tmp" "$DIR/global-bundle.pem"
  echo "RDS CA bundle: downloaded $(grep -c 'BEGIN CERTIFICATE' "$DIR/global-bundle.pem") certificates from $URL"
else
  rm -f "$DIR/global-bundle.pem.tmp"
  printf '\033[33mWARNING: could not download the RDS CA bundle from %s.\n  Functions deployed without it refuse a direct database endpoint (use an RDS Proxy, or put the file in %s).\033[0m\n' "$URL" "$DIR" >&2
fi
