#!/bin/sh
# Hash a password for credentials.xml with the file-RBAC extension's own tool, inside the
# running broker container:
#
#     hive-mq/bin/hash_pass.sh <hive-mq container name> <password> [iterations]
#
# Without a container, `python manage.py mqtt_hash_password <password>` prints the same format.
set -eu

if [ $# -lt 2 ] || [ -z "$1" ] || [ -z "$2" ]; then
    echo "usage: $0 <hive-mq container name> <password> [iterations]" >&2
    exit 1
fi

CONTAINER_NAME=$1
CLEAR_PASSWORD=$2
ITERATIONS=${3:-10000}

# The password and iterations reach the inner shell as arguments, never as code.
exec docker exec "$CONTAINER_NAME" sh -c '
    jar=$(ls /opt/hivemq/extensions/hivemq-file-rbac-extension/hivemq-file-rbac-extension-*.jar | head -n 1)
    exec java -jar "$jar" -q -i "$1" -p "$2"
' hash_pass "$ITERATIONS" "$CLEAR_PASSWORD"
