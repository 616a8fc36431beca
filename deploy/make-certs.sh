#!/bin/sh
# make-certs.sh - a throwaway certificate authority and the certificates FlexGate's TLS
# features need, for tests and for trying mTLS between hosts. Not for production: keys are
# unencrypted and the CA lives beside what it signs.
#
#   deploy/make-certs.sh DIR [NAME...]
#
# Writes into DIR (created 0700):
#   ca.crt ca.key                 the test CA (EC P-256, 10 years)
#   ctl.crt ctl.key               server cert for flexgate-ctl's tcp:// listener
#                                 (SAN: localhost, 127.0.0.1, ::1)
#   dp.crt dp.key                 client cert for data planes (extendedKeyUsage clientAuth)
#   server.crt server.key         server cert for a data plane's TLS listener / a test origin
#   NAME.crt NAME.key             one more server cert per extra NAME (SAN DNS:NAME), for SNI
# Existing files are left alone, so running it twice is harmless.
set -eu

dir=${1:?usage: make-certs.sh DIR [NAME...]}
shift
umask 077
mkdir -p "$dir"
cd "$dir"

if [ ! -f ca.key ]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout ca.key -out ca.crt -days 3650 -subj "/CN=FlexGate test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# issue NAME CN SAN EKU
issue() {
    [ -f "$1.crt" ] && return 0
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
        "$4" "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out "$1.crt" -days 825 -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

issue ctl flexgate-ctl "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
issue dp flexgate-dp "DNS:flexgate-dp" clientAuth
issue server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
for name in "$@"; do
    issue "$name" "$name" "DNS:$name" serverAuth
done
echo "certificates in $(pwd)"
