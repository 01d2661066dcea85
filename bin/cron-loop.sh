#!/bin/sh
# Run `manage.py runcrons` once a day at CRON_TIME (HH:MM in the container's time zone, TZ;
# default 03:00). A failed run is reported and the loop goes on to the next day.
set -eu
cd "$(dirname "$0")/.."
at="${CRON_TIME:-03:00}"
case "$at" in
    [0-2][0-9]:[0-5][0-9]) ;;
    *) echo "cron: CRON_TIME must be HH:MM, not '$at'" >&2; exit 2 ;;
esac

while :; do
    now=$(date +%s)
    next=$(date -d "today $at" +%s)
    if [ "$next" -le "$now" ]; then
        next=$(date -d "tomorrow $at" +%s)
    fi
    echo "cron: next run at $(date -d "@$next" '+%Y-%m-%d %H:%M %Z')"
    sleep $((next - now))
    if python manage.py runcrons; then
        echo "cron: runcrons finished"
    else
        echo "cron: runcrons failed with status $?" >&2
    fi
done
