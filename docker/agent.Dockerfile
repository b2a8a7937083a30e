# syntax=docker/dockerfile:1
# k8s-monitor agent image: `python -m agent`, with only the agent's own requirements.
# Build from the repository root:  docker build -f docker/agent.Dockerfile -t k8s-monitor/agent .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the agent's pinned requirements in a virtualenv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY agent/requirements.txt /tmp/agent-requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/agent-requirements.txt
# The agent imports only itself and the stdlib-only `contracts` package.
COPY agent/ /opt/app/agent/
COPY contracts/ /opt/app/contracts/
RUN /opt/venv/bin/python -m compileall -q /opt/app /opt/venv/lib

# ---- runtime: virtualenv and code only, run as an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 k8smon \
 && useradd --system --uid 10001 --gid k8smon --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin k8smon
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/app /opt/app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONPATH=/opt/app \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /opt/app
USER 10001:10001
CMD ["python", "-m", "agent"]
