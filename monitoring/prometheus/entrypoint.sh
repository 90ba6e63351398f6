#!/bin/sh
# Runs Prometheus ("$@") after writing the first of HTTP_AUTH_TOKENS (comma-separated, as
# orderstore reads them) to the file prometheus.yml names as the scrape's credentials_file.
# Prometheus cannot take a token from its environment, and a token written into a tracked
# file would be one more secret in the checkout; this way the shell's HTTP_AUTH_TOKENS, which
# compose hands to orderstore too, is all there is to set. No token leaves the file empty.
# ORDERSTORE_TOKEN_FILE moves the file (the tests do).
set -euf
token_file="${ORDERSTORE_TOKEN_FILE:-/run/orderstore/token}"
first_token=""
# Split at commas and blanks, as orderstore does (it trims each token and skips empty ones);
# -f above keeps a token from being read as a file pattern.
for token in $(printf '%s' "${HTTP_AUTH_TOKENS:-}" | tr ',' ' '); do
    first_token="$token"
    break
done
umask 077
printf '%s' "$first_token" > "$token_file"
exec "$@"
