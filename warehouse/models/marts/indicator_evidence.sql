-- mart.indicator_evidence: every record counted in every indicator value (a drill-down from any
-- figure to the records behind it; personal-data free). The indicator values are aggregated from
-- this table, so a figure and its evidence cannot disagree.
select * from evidence_enforcement
union all by name
select * from evidence_mediation
union all by name
select * from evidence_training
union all by name
select * from evidence_returns
order by year, township_code, indicator_code, record_table, record_id
