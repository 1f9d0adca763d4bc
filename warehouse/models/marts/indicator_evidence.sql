-- model: mart.indicator_evidence
-- materialized: table
-- reads: tag:evidence
-- grain: year, township_code, indicator_code, record_table, record_id
-- sorted_in_pieces: year, township_code
-- mart.indicator_evidence: every record counted in every indicator value (a drill-down from any
-- figure to the records behind it; personal-data free). The indicator values are aggregated from
-- this table, so a figure and its evidence cannot disagree. Its rows are those of every model
-- tagged `evidence` (one per source; warehouse/dag.py writes their union in place of `tagged`).
select *
from {{ tagged('evidence') }}
order by year, township_code, indicator_code, record_table, record_id
