# syntax=docker/dockerfile:1
# M3SaaS application image: gunicorn on port 80 as the non-root user `m3saas`.
# Build stage: mysqlclient needs a compiler and the MariaDB headers; the runtime stage does not.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libmariadb-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
# Runtime pins only: everything above the "# Development" line of requirements.txt.
RUN awk '/^# Development/ {exit} NF && !/^#/' /tmp/requirements.txt > /tmp/runtime.txt \
    && pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir -r /tmp/runtime.txt

FROM ${PYTHON_IMAGE} AS runtime
# libmariadb3 for mysqlclient; mariadb-client for mysqldump/mysql (backups and restores).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 mariadb-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system m3saas \
    && useradd --system --gid m3saas --home-dir /app --no-create-home --shell /usr/sbin/nologin m3saas
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VAR_DIR=/app/var \
    LOG_FORMAT=json \
    STATIC_ROOT=/app/staticfiles \
    PORT=80
WORKDIR /app
COPY . /app
# Static files (admin, API docs) are collected into the image; WhiteNoise serves them.
RUN VAR_DIR=/tmp/collectstatic SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && rm -rf /tmp/collectstatic \
    && mkdir -p /app/var \
    && chown m3saas:m3saas /app/var
USER m3saas
# Port 80 as a non-root user: Docker (20.10+) lets container processes bind ports below 1024
# (net.ipv4.ip_unprivileged_port_start=0 in the container's network namespace);
# docker-compose.yml sets that sysctl explicitly.
EXPOSE 80
# The master database only: one tenant database server down must not mark every app container
# unhealthy (its tenants answer 503; the full `/health` names it for monitoring).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health?scope=master' % os.environ.get('PORT', '80'), timeout=4)"]
ENTRYPOINT ["/app/bin/docker-entrypoint.sh"]
CMD ["web"]
