# the tomeflow image used by docker-compose.yml's migrate, deploy and worker services
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GX_ANALYTICS_ENABLED=false PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY flows ./flows
COPY schemas ./schemas
COPY automations ./automations
COPY alembic.ini prefect.yaml ./
RUN pip install --no-cache-dir -c requirements.lock -e .
COPY seeds ./seeds
RUN mkdir -p /var/lib/tomeflow && chown nobody /var/lib/tomeflow
USER nobody
