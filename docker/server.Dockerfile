# syntax=docker/dockerfile:1
# k8s-monitor server image: web (gunicorn), Celery worker and beat, Flower, migrations.
# Build from the repository root:  docker build -f docker/server.Dockerfile -t k8s-monitor/server .
# The Helm chart picks the process per Deployment; the default command serves the web app.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve the pinned requirements and install the project into a virtualenv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A C compiler for mypyc: installing the project compiles the rule engine's hot modules
# (setup.py; mypy is a build requirement, fetched into pip's throwaway build environment, never
# into /opt/venv). This stage only: the runtime stage copies the virtualenv.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements.txt ./
RUN /opt/venv/bin/pip install -r requirements.txt
COPY pyproject.toml setup.py README.md ./
COPY agent/ agent/
COPY beat_schedule/ beat_schedule/
COPY cli/ cli/
COPY contracts/ contracts/
COPY ingest/ ingest/
COPY reports/ reports/
COPY rules/ rules/
COPY settings/ settings/
COPY store/ store/
COPY workers/ workers/
# Without a compiler the install still succeeds and the engine runs interpreted: the last
# line of `k8smon --version` (printed here) says which.
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/k8smon --version

# ---- runtime: the virtualenv only, run as an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 k8smon \
 && useradd --system --uid 10001 --gid k8smon --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin k8smon
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    K8SMON_ENV=production \
    K8SMON_INSTANCE_PATH=/var/lib/k8s-monitor
RUN install -d -o 10001 -g 10001 -m 0750 /var/lib/k8s-monitor
WORKDIR /var/lib/k8s-monitor
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "--workers", "2", "--worker-class", "gthread", "--threads", "4", \
     "--bind", "0.0.0.0:8000", "--worker-tmp-dir", "/tmp", "--no-control-socket", "cli.wsgi:app"]
