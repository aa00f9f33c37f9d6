# The hub's image: `docker compose build hub`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY devices devices
COPY adapters adapters
COPY simulators simulators
COPY dashboards dashboards
RUN pip install --no-cache-dir . && useradd --system --home /data smarthub && mkdir -p /data && chown smarthub /data
USER smarthub
EXPOSE 8080
CMD ["smarthub", "run"]
