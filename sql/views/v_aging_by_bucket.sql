-- Outstanding by aging bucket for every as-of date. Summed in whole kopecks: SQLite
-- keeps NUMERIC as doubles, and a plain SUM over a million of them drifts by kopecks.
SELECT as_of_date,
       bucket,
       COUNT(*)                                AS documents,
       SUM(ROUND(outstanding * 100)) / 100.0   AS outstanding
FROM aging_snapshot
GROUP BY as_of_date, bucket
