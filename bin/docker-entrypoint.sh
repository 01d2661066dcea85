#!/bin/sh
# Container entry point (also used by `make serve`).
#   web      wait for the master database, prepare it, then serve with gunicorn (the default)
#   prepare  wait, then `migrate`, `seed` and, with AUTO_MIGRATION, `migrate_tenants`
#   serve    gunicorn only, configured by m3saas/gunicorn_conf.py (PORT, WEB_CONCURRENCY, ...)
#   cron     wait, then run `manage.py runcrons` once a day (bin/cron-loop.sh)
#   worker   wait, then a Celery worker for tenant work (CELERY_BROKER_URL; WORKER_CONCURRENCY processes)
#   beat     the Celery schedule that starts the daily scheduled jobs at CRON_TIME (one only)
#   anything else is run as given, e.g. `python manage.py createsuperuser`
# Each preparation step is idempotent: a second start applies nothing new.
set -eu
cd "$(dirname "$0")/.."

log() { echo "entrypoint: $*"; }

# AUTO_MIGRATION as the settings read it (environment, else on only for the embedded default).
auto_migration() {
    [ "$(python manage.py shell -c "from django.conf import settings; print(int(settings.AUTO_MIGRATION))" | tail -n 1)" = 1 ]
}

wait_for_database() {
    deadline=$(($(date +%s) + ${DB_WAIT_SECONDS:-60}))
    while :; do
        status=0
        output=$(python manage.py shell -c "from django.db import connection; connection.ensure_connection()" 2>&1) || status=$?
        [ "$status" -eq 0 ] && return 0
        case "$status:$output" in
            # A configuration error (manage.py exits with 2; a missing SECRET_KEY): waiting would not help.
            2:* | *ImproperlyConfigured*)
                echo "$output" | tail -n 3 >&2
                exit 2
                ;;
        esac
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "the master database did not answer within ${DB_WAIT_SECONDS:-60}s:"
            echo "$output" | tail -n 5 >&2
            exit 1
        fi
        log "waiting for the master database"
        sleep 2
    done
}

prepare() {
    wait_for_database
    log "migrating the master database"
    python manage.py migrate --noinput
    log "seeding the master database"
    python manage.py seed
    if auto_migration; then
        log "AUTO_MIGRATION: migrating every tenant database"
        python manage.py migrate_tenants
    fi
}

serve() {
    exec gunicorn --config python:m3saas.gunicorn_conf m3saas.wsgi:application
}

case "${1:-web}" in
    web)
        prepare
        serve
        ;;
    prepare) prepare ;;
    serve) serve ;;
    cron)
        wait_for_database
        exec bin/cron-loop.sh
        ;;
    worker)
        wait_for_database
        exec celery -A m3saas.celery worker -l "${LOG_LEVEL:-INFO}" --concurrency "${WORKER_CONCURRENCY:-2}"
        ;;
    beat) exec celery -A m3saas.celery beat -l "${LOG_LEVEL:-INFO}" ;;
    *) exec "$@" ;;
esac
