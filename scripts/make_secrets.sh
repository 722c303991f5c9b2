#!/usr/bin/env bash
# Makes what a TLS + token deployment of gan-server needs, for local use and tests: a private CA,
# a server certificate signed by it, a client certificate (for --tls_client_ca), and one token
# per role with the token file gan-server reads (--auth_tokens: "<role> <principal> <sha256>").
#
#   scripts/make_secrets.sh DIR [SERVER_NAME...]   (default names: localhost gan-server 127.0.0.1)
#
# Writes DIR/ca.pem, ca.key, server.pem, server.key, client.pem, client.key, tokens (the token
# file: hashes only) and token.admin, token.trainer, token.viewer (the tokens themselves, mode
# 600). Never commit them; for a real deployment use your own CA and secret store.
set -euo pipefail
dir=${1:?usage: scripts/make_secrets.sh DIR [SERVER_NAME...]}
shift
names=("$@")
((${#names[@]})) || names=(localhost gan-server 127.0.0.1)
command -v openssl >/dev/null || { echo "make_secrets: openssl is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
san=""
for n in "${names[@]}"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san=${san%,}
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=gan-server local CA" \
  -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
for who in server client; do
  cn=$([[ $who == server ]] && echo "${names[0]}" || echo "gan-client")
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$dir/$who.key" \
    -out "$dir/$who.csr" 2>/dev/null
  ext="$dir/$who.ext"
  if [[ $who == server ]]; then
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' > "$ext"
  fi
  openssl x509 -req -in "$dir/$who.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -extfile "$ext" -out "$dir/$who.pem" 2>/dev/null
  rm -f "$dir/$who.csr" "$ext"
done
rm -f "$dir/ca.srl"
: > "$dir/tokens"
echo "# role principal sha256(token); made by scripts/make_secrets.sh" >> "$dir/tokens"
for role in admin trainer viewer; do
  token=$(openssl rand -hex 32)
  printf '%s' "$token" > "$dir/token.$role"
  printf '%s %s %s\n' "$role" "$role-user" "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)" \
    >> "$dir/tokens"
done
chmod 644 "$dir/ca.pem" "$dir/server.pem" "$dir/client.pem" "$dir/tokens"
echo "secrets in $dir: ca.pem server.pem/.key client.pem/.key tokens token.{admin,trainer,viewer}"
