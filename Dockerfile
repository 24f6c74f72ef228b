# syntax=docker/dockerfile:1
# The project image for docker-compose.yaml: the official Airflow image, the project's
# pinned requirements (constraints.txt pins the whole tree, the same set `make venv`
# installs) and the receivables package. Built and tagged by `docker compose build`.
FROM apache/airflow:3.3.2-python3.11

# WeasyPrint (claim letters as PDF) needs Pango and HarfBuzz; DejaVu covers Cyrillic.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    && apt-get autoremove -yqq --purge \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
USER airflow

# Requirements first: this layer is rebuilt only when the pins change.
# "apache-airflow==${AIRFLOW_VERSION}" keeps pip from moving Airflow itself (the image's
# own advice); the fab provider (the compose file uses its auth manager) and its
# dependencies are pinned in deploy/constraints-image.txt, resolved against constraints.txt.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/
COPY --chown=airflow:0 deploy/constraints-image.txt /opt/airflow/deploy/
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" apache-airflow-providers-fab \
        -r /opt/airflow/requirements.txt -c /opt/airflow/constraints.txt \
        -c /opt/airflow/deploy/constraints-image.txt

# The project root is /opt/airflow (RECEIVABLES_HOME): dags/, plugins/, include/ and sql/
# sit where settings.py and the warehouse (sql/views) look for them. The package is
# installed editable so that the `receivables` command and Airflow import the same code,
# the one compose mounts over plugins/; a copy in site-packages would not find sql/views.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 sql /opt/airflow/sql
RUN pip install --no-cache-dir --no-deps -e /opt/airflow \
    && mkdir -p /opt/airflow/data \
    && chmod -R g+rwX /opt/airflow/data

# PYTHONPATH: the package imports for any user, root included (airflow-init runs as
# root, and .pth files of the airflow user's site-packages are not read for root).
ENV RECEIVABLES_HOME=/opt/airflow \
    RECEIVABLES_DATA_DIR=/opt/airflow/data \
    RECEIVABLES_POLICY=/opt/airflow/include/policy.yaml \
    PYTHONPATH=/opt/airflow/plugins \
    GX_ANALYTICS_ENABLED=False
