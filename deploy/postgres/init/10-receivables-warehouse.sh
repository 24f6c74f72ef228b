#!/usr/bin/env bash
# Creates the warehouse database (connection receivables_db) and its owner beside
# Airflow's metadata database. The postgres image runs the scripts of
# /docker-entrypoint-initdb.d once, when the data volume is empty; the tables are made
# later by `receivables warehouse migrate` (airflow-init).
set -euo pipefail

: "${RECEIVABLES_DB_PASSWORD:?RECEIVABLES_DB_PASSWORD is not set (see .env.example)}"
db_name="${RECEIVABLES_DB_NAME:-receivables}"
db_user="${RECEIVABLES_DB_USER:-receivables}"

# psql variables (:"name" identifiers, :'name' literals) quote the values safely.
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB}" \
    --set=db_name="${db_name}" --set=db_user="${db_user}" \
    --set=db_password="${RECEIVABLES_DB_PASSWORD}" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'db_user') AS role_missing \gset
\if :role_missing
CREATE ROLE :"db_user" LOGIN PASSWORD :'db_password';
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db_name') AS db_missing \gset
\if :db_missing
CREATE DATABASE :"db_name" OWNER :"db_user" ENCODING 'UTF8' TEMPLATE template0;
\endif
SQL
echo "warehouse database ${db_name} owned by ${db_user} is ready"
