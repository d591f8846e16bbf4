#!/usr/bin/env bash
# One broker of the compose cluster, secured: SASL/SCRAM on its listener, ACLs enforced.
#
# Its server.properties are written from the KAFKA_* environment, each name read as the
# apache/kafka image reads it (KAFKA_ dropped, lower case, "___" -> "-", "__" -> "_",
# "_" -> "."), and from the broker's own credentials (CLEARSIM_KAFKA_USER and
# CLEARSIM_KAFKA_PASSWORD, the super user it speaks to the other brokers as, with SCRAM on
# the inter-broker listener and PLAIN on the controller listener). Its storage is formatted
# once, with the SCRAM credentials of that user and of every principal in the credentials
# directory (one NAME.env file each: CLEARSIM_KAFKA_USER=... and CLEARSIM_KAFKA_PASSWORD=...,
# the very files the node services read); a restart keeps the storage, and so the users.
#   KAFKA_HOME                  the Kafka installation (default /opt/kafka)
#   CLEARSIM_CREDENTIALS        the credentials directory (default /etc/clearsim/credentials)
#   CLEARSIM_SERVER_PROPERTIES  where to write the server's properties
#   CLEARSIM_ADMIN_PROPERTIES   where to write the admin's client properties (health check)
set -euo pipefail
home=${KAFKA_HOME:-/opt/kafka}
credentials=${CLEARSIM_CREDENTIALS:-/etc/clearsim/credentials}
config=${CLEARSIM_SERVER_PROPERTIES:-/tmp/clearsim/server.properties}
client=${CLEARSIM_ADMIN_PROPERTIES:-/tmp/clearsim/admin.properties}
: "${CLUSTER_ID:?CLUSTER_ID: the KRaft cluster id is not set}"
: "${CLEARSIM_KAFKA_USER:?CLEARSIM_KAFKA_USER: the broker's own user is not set}"
: "${CLEARSIM_KAFKA_PASSWORD:?CLEARSIM_KAFKA_PASSWORD: the broker's own password is not set}"
: "${KAFKA_INTER_BROKER_LISTENER_NAME:?KAFKA_INTER_BROKER_LISTENER_NAME is not set}"
: "${KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL:?the inter-broker SASL mechanism is not set}"
user=$CLEARSIM_KAFKA_USER password=$CLEARSIM_KAFKA_PASSWORD
mechanism=$KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL
mkdir -p "$(dirname "$config")" "$(dirname "$client")"

# KAFKA_LISTENER_NAME_SASL__PLAINTEXT_SCRAM___SHA___256 -> listener.name.sasl_plaintext.scram-sha-256
property() {
  local key=${1#KAFKA_}
  key=${key,,}
  key=${key//___/-}
  key=${key//__/$'\x01'}
  key=${key//_/.}
  printf '%s' "${key//$'\x01'/_}"
}

scram_login="org.apache.kafka.common.security.scram.ScramLoginModule required"
plain_login="org.apache.kafka.common.security.plain.PlainLoginModule required"
{
  for name in $(compgen -e | grep '^KAFKA_' | sort); do
    case $name in    # the JVM's and the scripts' own settings, not the server's
      KAFKA_HOME|KAFKA_VERSION|KAFKA_DEBUG|KAFKA_OPTS|KAFKA_HEAP_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|\
      KAFKA_GC_LOG_OPTS|KAFKA_JMX_*|KAFKA_LOG4J_*|KAFKA_TOOLS_*) continue ;;
    esac
    printf '%s=%s\n' "$(property "$name")" "${!name}"
  done
  printf 'listener.name.%s.%s.sasl.jaas.config=%s username="%s" password="%s";\n' \
    "${KAFKA_INTER_BROKER_LISTENER_NAME,,}" "${mechanism,,}" "$scram_login" "$user" "$password"
  printf 'listener.name.controller.plain.sasl.jaas.config=%s %s %s %s;\n' "$plain_login" \
    "username=\"$user\"" "password=\"$password\"" "user_$user=\"$password\""
} >"$config"
{
  printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=%s\n' "$mechanism"
  printf 'sasl.jaas.config=%s username="%s" password="%s";\n' "$scram_login" "$user" "$password"
} >"$client"

users=(--add-scram "$mechanism=[name=$user,password=$password]")
for file in "$credentials"/*.env; do
  [ -e "$file" ] || continue
  name=$(sed -n 's/^CLEARSIM_KAFKA_USER=//p' "$file")
  secret=$(sed -n 's/^CLEARSIM_KAFKA_PASSWORD=//p' "$file")
  if [ -z "$name" ] || [ -z "$secret" ]; then
    echo "start-broker: $file names no CLEARSIM_KAFKA_USER and CLEARSIM_KAFKA_PASSWORD" >&2
    exit 2
  fi
  [ "$name" = "$user" ] && continue
  users+=(--add-scram "$mechanism=[name=$name,password=$secret]")
done
echo "start-broker: formatting the storage (once) with $((${#users[@]} / 2)) SCRAM users"
"$home/bin/kafka-storage.sh" format --ignore-formatted --cluster-id "$CLUSTER_ID" \
  -c "$config" "${users[@]}"
exec "$home/bin/kafka-server-start.sh" "$config"
