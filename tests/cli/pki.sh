# Sourced by the tests of the engine's secured management API: a small PKI
# made with the openssl command line, and API tokens.
#
#   make_api_pki DIR WEFT
#   -> DIR/ca.crt (the CA), DIR/engine.{crt,key} (CN engine.test, SAN IP
#      127.0.0.1 and DNS engine.test, signed by the CA), DIR/alice.{crt,key}
#      (a client, CN operator-alice, signed by the CA), DIR/rogue-ca.crt and
#      DIR/mallory.{crt,key} (a client signed by the rogue CA), tokens made by
#      `weft key gen-token`: DIR/alice.token and DIR/bob.token (a client's
#      files) and DIR/tokens (the engine's: "alice TOKEN" and "bob TOKEN").
#      Keys and token files are mode 0600. Returns non-zero, saying why on
#      stderr, when openssl or weft fails.

# _pki_cert DIR NAME CN CA EXT: NAME.key and NAME.crt signed by CA's key
# (self-signed, as a CA, when CA is -), with the extensions EXT.
_pki_cert() {
  local dir=$1 name=$2 cn=$3 ca=$4 ext=$5
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$dir/$name.key" \
    -out "$dir/$name.csr" -subj "/CN=$cn" 2>"$dir/openssl.err" || { cat "$dir/openssl.err" >&2; return 1; }
  if [ "$ca" = - ]; then
    openssl x509 -req -in "$dir/$name.csr" -signkey "$dir/$name.key" -out "$dir/$name.crt" -days 1 \
      -extfile <(printf 'basicConstraints=critical,CA:true\nkeyUsage=keyCertSign,cRLSign\n') 2>"$dir/openssl.err"
  else
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" -CAcreateserial \
      -out "$dir/$name.crt" -days 1 -extfile <(printf '%s\n' "$ext") 2>"$dir/openssl.err"
  fi || { cat "$dir/openssl.err" >&2; return 1; }
  chmod 600 "$dir/$name.key"
}

make_api_pki() {
  local dir=$1 weft=$2
  command -v openssl >/dev/null || { echo "no openssl (scripts/setup.sh installs it)" >&2; return 1; }
  mkdir -p "$dir"
  _pki_cert "$dir" ca weft-test-ca - "" &&
    _pki_cert "$dir" rogue-ca rogue-ca - "" &&
    _pki_cert "$dir" engine engine.test ca "subjectAltName=IP:127.0.0.1,DNS:engine.test" &&
    _pki_cert "$dir" alice operator-alice ca "extendedKeyUsage=clientAuth" &&
    _pki_cert "$dir" mallory mallory rogue-ca "extendedKeyUsage=clientAuth" || return 1
  "$weft" key gen-token -o "$dir/alice.token" >/dev/null &&
    "$weft" key gen-token -o "$dir/bob.token" >/dev/null || return 1
  (
    umask 077
    printf '# NAME TOKEN\nalice %s\nbob %s\n' "$(<"$dir/alice.token")" "$(<"$dir/bob.token")" >"$dir/tokens"
  )
}
