-- model: mart.indicator_edition_change
-- materialized: statement
-- reads: mart.indicator_edition_value, mart.indicator_edition_evidence, mart.indicator_value, mart.indicator_evidence
-- The change log of a new edition ($year, $edition) against what it is compared with: the
-- previous edition, or the nightly values for edition 1. Every indicator value that changed, by
-- how much, and the records whose contribution changed (for a county row: across all its
-- townships). Its rows are inserted into mart.indicator_edition_change by warehouse/rebuild.py.
with new_values as (
    select * from mart.indicator_edition_value where year = $year and edition = $edition
),
new_evidence as (
    select * from mart.indicator_edition_evidence where year = $year and edition = $edition
),
previous_values as (
    select township_code, indicator_code, value, qualifier
    from mart.indicator_edition_value where year = $year and edition = $edition - 1
    union all
    select township_code, indicator_code, value, qualifier
    from mart.indicator_value where year = $year and $edition = 1
),
previous_evidence as (
    select county_code, township_code, indicator_code, record_table, record_id, numerator, denominator,
           measure, qualifier
    from mart.indicator_edition_evidence where year = $year and edition = $edition - 1
    union all
    select county_code, township_code, indicator_code, record_table, record_id, numerator, denominator,
           measure, qualifier
    from mart.indicator_evidence where year = $year and $edition = 1
),
changed as (
    select n.township_code, n.indicator_code, p.value as previous_value, n.value,
           n.value - p.value as change, p.qualifier as previous_qualifier, n.qualifier
    from new_values n
    full join previous_values p on p.township_code = n.township_code and p.indicator_code = n.indicator_code
    where n.value is distinct from p.value or n.qualifier is distinct from p.qualifier
),
-- the township-indicator pairs whose records are listed: the changed values' own, and for a
-- county row its townships'. Only their evidence is compared record by record (a record's two
-- sides share its pair, so a pair is compared whole): the whole year's evidence at national
-- scale (tens of millions of rows a side) ran out of memory under a 768MB cap.
listed as (
    select township_code, indicator_code from changed
    union
    select e.township_code, e.indicator_code
    from (select county_code, township_code, indicator_code from new_evidence
          union all
          select county_code, township_code, indicator_code from previous_evidence) e
    join changed c on c.township_code = e.county_code and c.indicator_code = e.indicator_code
),
record_changes as (
    select coalesce(n.county_code, p.county_code) as county_code,
           coalesce(n.township_code, p.township_code) as township_code,
           coalesce(n.indicator_code, p.indicator_code) as indicator_code,
           coalesce(n.record_table, p.record_table) || ':' || coalesce(n.record_id, p.record_id) as record
    from (select * from new_evidence semi join listed using (township_code, indicator_code)) n
    full join (select * from previous_evidence semi join listed using (township_code, indicator_code)) p
      on p.township_code = n.township_code and p.indicator_code = n.indicator_code
     and p.record_table = n.record_table and p.record_id = n.record_id
    where n.record_id is null or p.record_id is null
       or n.numerator is distinct from p.numerator or n.denominator is distinct from p.denominator
       or n.measure is distinct from p.measure or n.qualifier is distinct from p.qualifier
)
select $year as year, $edition as edition, c.township_code, c.indicator_code, c.previous_value, c.value,
       c.change, c.previous_qualifier, c.qualifier,
       coalesce((select list(distinct r.record order by r.record) from record_changes r
                 where r.indicator_code = c.indicator_code
                   and (r.township_code = c.township_code or r.county_code = c.township_code)), [])
           as records
from changed c
order by c.township_code, c.indicator_code
