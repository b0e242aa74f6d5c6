# shellcheck shell=bash
# What a secured Kafka node needs, for scripts/kafka (sourced by it, not run): a throwaway certificate authority and
# the certificates it signs (openssl), one SCRAM-SHA-512 password per principal, the principals' files that clients
# connect with, and the security part of each node's server.properties.
#
# A deployment (one node, or a cluster) lives in a folder R:
#   R/security        "secured": the mode it was formatted in
#   R/nodes           one line per node: <node id> <CLIENT port> <TLS port> <CONTROLLER port>, chosen at format
#   R/tls/            (0700) the CA's key and certificate, and each node's key and certificate (CN=broker)
#   R/node-<id>/      each node: server.properties, logs/ (its data), broker.pid, console.log, server.log
#   R/principals/     (0700, files 0600) what clients get: ca.pem, and per principal <role>.env, <role>.properties,
#                     <role>-tls.env, <role>.crt, <role>.key; listeners.txt (docs/kafka.md)
# Every step makes only what is missing, and writes each file whole (a temporary file, then a rename), so a format
# cut short by a crash is finished by the next start with the same keys and passwords.

# The principals of docs/kafka.md: one SCRAM user and one client certificate (CN=<name>) each. The nodes authenticate
# to each other by certificate as User:broker; admin and broker are the super users.
PRINCIPALS=(admin relay projections auditor witness api claims-notifier warehouse-exporter)
SUPER_USERS="User:admin;User:broker"
SCRAM_MECHANISM="SCRAM-SHA-512"
PASSWORD_BYTES=24
# A throwaway CA for loopback brokers: long enough never to expire under a developer's data folder.
CERT_VALIDITY_DAYS=3650
# Only a certificate whose whole subject is CN=<name> maps to User:<name>; any other subject stays the whole DN, which
# no ACL names. ($1 is the rule's, not the shell's.)
# shellcheck disable=SC2016
PRINCIPAL_MAPPING_RULES='RULE:^CN=([A-Za-z0-9._-]+)$/$1/,DEFAULT'

write_file() {  # write_file PATH: stdin to PATH, 0600, whole or not at all
  local tmp; tmp="$(mktemp "$1.XXXXXX")"
  cat > "$tmp"; chmod 600 "$tmp"; mv -f "$tmp" "$1"
}

private_dir() { mkdir -p "$1"; chmod 700 "$1"; }

# --- certificates --------------------------------------------------------------------------------------------------

tls_issue() {  # tls_issue TLS_DIR NAME KEY_OUT CERT_OUT EXTENSIONS: a P-256 key and a certificate CN=NAME from the CA
  local tls="$1" name="$2" key="$3" cert="$4" ext="$5" csr
  csr="$(mktemp "$tls/csr.XXXXXX")"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
    -keyout "$key.tmp" -out "$csr" 2>/dev/null || die "openssl could not make a key for $name"
  openssl x509 -req -in "$csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days "$CERT_VALIDITY_DAYS" -extfile <(printf '%b' "$ext") -out "$cert.tmp" 2>/dev/null \
    || die "openssl could not sign the certificate of $name"
  rm -f "$csr"; chmod 600 "$key.tmp" "$cert.tmp"
  mv -f "$key.tmp" "$key"; mv -f "$cert.tmp" "$cert"
}

tls_make_ca() {  # tls_make_ca TLS_DIR
  local tls="$1"
  private_dir "$tls"
  [ -f "$tls/ca.pem" ] && [ -f "$tls/ca.key" ] && return 0
  log "making a throwaway certificate authority in $tls"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$CERT_VALIDITY_DAYS" \
    -subj "/CN=bpjs-ledger throwaway Kafka CA" -keyout "$tls/ca.key.tmp" -out "$tls/ca.pem.tmp" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null \
    || die "openssl could not make the certificate authority"
  chmod 600 "$tls/ca.key.tmp" "$tls/ca.pem.tmp"
  mv -f "$tls/ca.key.tmp" "$tls/ca.key"; mv -f "$tls/ca.pem.tmp" "$tls/ca.pem"
}

tls_make_node() {  # tls_make_node TLS_DIR NODE_ID: node-<id>.pem, its key then its certificate chain (a PEM keystore)
  local tls="$1" id="$2"
  [ -f "$tls/node-$id.pem" ] && return 0
  # The nodes are both servers and (to each other and to the controllers) clients; clients check the address.
  tls_issue "$tls" broker "$tls/node-$id.key" "$tls/node-$id.crt" \
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n'
  cat "$tls/node-$id.key" "$tls/node-$id.crt" "$tls/ca.pem" | write_file "$tls/node-$id.pem"
  rm -f "$tls/node-$id.key" "$tls/node-$id.crt"
}

tls_make_client() {  # tls_make_client TLS_DIR PRINCIPALS_DIR NAME: NAME.crt and NAME.key, CN=NAME
  local tls="$1" dir="$2" name="$3"
  [ -f "$dir/$name.crt" ] && [ -f "$dir/$name.key" ] && return 0
  tls_issue "$tls" "$name" "$dir/$name.key" "$dir/$name.crt" \
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
}

# --- principals' files ---------------------------------------------------------------------------------------------

listener_addresses() {  # listener_addresses R COLUMN: host:port of every node's listener (2 CLIENT, 3 TLS), comma-separated
  awk -v c="$2" '{ printf "%s127.0.0.1:%s", (NR > 1 ? "," : ""), $c }' "$1/nodes"
}

principal_password() {  # the password a principal was given, or a new random one
  local env="$1/principals/$2.env" password=""
  [ -f "$env" ] && password="$(sed -n 's/^LEDGER_KAFKA_SASL_PASSWORD=//p' "$env")"
  [ -n "$password" ] || password="$(openssl rand -hex "$PASSWORD_BYTES")"
  printf '%s' "$password"
}

development_settings() {  # development_settings R ROLE: the admin's replication settings on a single node
  [ "$2" = admin ] && [ "$(wc -l < "$1/nodes")" -eq 1 ] || return 0
  cat <<ENV
# A single broker can hold only one copy of a partition: topics get replication factor 1, which the ledger accepts
# only in development mode. Never for a real cluster.
LEDGER_KAFKA_REPLICATION_FACTOR=1
LEDGER_DEVELOPMENT_MODE=true
ENV
}

write_principal() {  # write_principal R ROLE PASSWORD: the role's env files and properties file
  local r="$1" role="$2" password="$3" dir="$1/principals"
  { cat <<ENV
# The ledger's Kafka settings for User:$role over SASL_SSL (SCRAM-SHA-512), made by scripts/kafka for the brokers
# in $r. Load them with: set -a; . $dir/$role.env; set +a
LEDGER_KAFKA_BOOTSTRAP_SERVERS=$(listener_addresses "$r" 2)
LEDGER_KAFKA_SECURITY_PROTOCOL=SASL_SSL
LEDGER_KAFKA_SASL_MECHANISM=$SCRAM_MECHANISM
LEDGER_KAFKA_SASL_USERNAME=$role
LEDGER_KAFKA_SASL_PASSWORD=$password
LEDGER_KAFKA_SSL_CAFILE=$dir/ca.pem
ENV
    development_settings "$r" "$role"; } | write_file "$dir/$role.env"
  { cat <<ENV
# The ledger's Kafka settings for User:$role over mutual TLS (the client certificate CN=$role), made by
# scripts/kafka for the brokers in $r. Load them with: set -a; . $dir/$role-tls.env; set +a
LEDGER_KAFKA_BOOTSTRAP_SERVERS=$(listener_addresses "$r" 3)
LEDGER_KAFKA_SECURITY_PROTOCOL=SSL
LEDGER_KAFKA_SSL_CAFILE=$dir/ca.pem
LEDGER_KAFKA_SSL_CERTFILE=$dir/$role.crt
LEDGER_KAFKA_SSL_KEYFILE=$dir/$role.key
ENV
    development_settings "$r" "$role"; } | write_file "$dir/$role-tls.env"
  write_file "$dir/$role.properties" <<PROPS
# Kafka's own tools as User:$role (--command-config, --consumer.config, --producer.config), over SASL_SSL with
# $SCRAM_MECHANISM; the bootstrap servers are in $role.env. Made by scripts/kafka for the brokers in $r.
security.protocol=SASL_SSL
sasl.mechanism=$SCRAM_MECHANISM
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$role" password="$password";
ssl.truststore.type=PEM
ssl.truststore.location=$dir/ca.pem
PROPS
}

write_listeners() {  # write_listeners R: listeners.txt, one line per listener of every node
  awk '{ printf "%s CLIENT SASL_SSL 127.0.0.1:%s\n%s TLS SSL 127.0.0.1:%s\n%s CONTROLLER SSL 127.0.0.1:%s\n",
         $1, $2, $1, $3, $1, $4 }' "$1/nodes" | write_file "$1/principals/listeners.txt"
}

# --- the nodes' configuration --------------------------------------------------------------------------------------

secured_node_config() {  # secured_node_config R NODE_ID: the security part of the node's server.properties
  local r="$1" id="$2" client tls controller
  read -r _ client tls controller < <(awk -v id="$id" '$1 == id' "$r/nodes")
  cat <<CONF
# Three listeners, none in the clear and none anonymous: applications log in with a SCRAM password (CLIENT); clients
# and the other nodes show a certificate of this CA (TLS); the controller quorum is reached only with a certificate of
# this CA too (CONTROLLER), where the same authorizer decides: the nodes (CN=broker) are super users.
listeners=CLIENT://127.0.0.1:$client,TLS://127.0.0.1:$tls,CONTROLLER://127.0.0.1:$controller
advertised.listeners=CLIENT://127.0.0.1:$client,TLS://127.0.0.1:$tls
listener.security.protocol.map=CLIENT:SASL_SSL,TLS:SSL,CONTROLLER:SSL
controller.listener.names=CONTROLLER
inter.broker.listener.name=TLS
ssl.keystore.type=PEM
ssl.keystore.location=$r/tls/node-$id.pem
ssl.truststore.type=PEM
ssl.truststore.location=$r/tls/ca.pem
# A certificate of this CA is required on TLS and CONTROLLER; on CLIENT the SCRAM login says who the client is.
ssl.client.auth=required
listener.name.client.ssl.client.auth=none
ssl.principal.mapping.rules=$PRINCIPAL_MAPPING_RULES
sasl.enabled.mechanisms=$SCRAM_MECHANISM
listener.name.client.sasl.enabled.mechanisms=$SCRAM_MECHANISM
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# Nothing is allowed that an ACL does not grant; the ledger's ACLs are made by \`ledger kafka init\` run as admin.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=$SUPER_USERS
CONF
}

# --- format --------------------------------------------------------------------------------------------------------

secured_prepare() {  # secured_prepare R: certificates, passwords and principals' files for the nodes in R/nodes
  local r="$1" id role formatted=""
  for id in $(awk '{ print $1 }' "$r/nodes"); do
    [ -f "$(node_dir "$r" "$id")/logs/meta.properties" ] && formatted=1
  done
  private_dir "$r/principals"
  if [ -n "$formatted" ]; then
    # The SCRAM passwords are in the formatted metadata and in these files only: new ones would not match.
    for role in "${PRINCIPALS[@]}"; do
      [ -f "$r/principals/$role.env" ] \
        || die "$r/principals/$role.env is missing and its password cannot be recovered: remove $r and start again"
    done
  fi
  tls_make_ca "$r/tls"
  cp "$r/tls/ca.pem" "$r/principals/ca.pem.tmp"; chmod 600 "$r/principals/ca.pem.tmp"
  mv -f "$r/principals/ca.pem.tmp" "$r/principals/ca.pem"
  for id in $(awk '{ print $1 }' "$r/nodes"); do tls_make_node "$r/tls" "$id"; done
  for role in "${PRINCIPALS[@]}"; do
    tls_make_client "$r/tls" "$r/principals" "$role"
    write_principal "$r" "$role" "$(principal_password "$r" "$role")"
  done
  write_listeners "$r"
}

scram_arguments() {  # the StorageTool arguments that add every principal's SCRAM credentials to the new metadata
  local r="$1" role
  for role in "${PRINCIPALS[@]}"; do
    printf '%s\0' --add-scram "$SCRAM_MECHANISM=[name=$role,password=$(principal_password "$r" "$role")]"
  done
}
