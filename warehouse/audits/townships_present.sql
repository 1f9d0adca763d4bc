-- severity: fail
-- Every township and county has every indicator for every year computed.
with expected as (
    select y.year, t.code, c.indicator_code
    from (select distinct year from mart.indicator_value) y
    cross join (select code from ref.township union select distinct county_code from ref.township) t
    cross join ref.indicator_catalogue c
)
select 'townships_present' as audit,
       'missing ' || e.year || ' ' || e.code || ' ' || e.indicator_code as detail
from expected e
anti join mart.indicator_value v
  on v.year = e.year and v.township_code = e.code and v.indicator_code = e.indicator_code
union all
select 'townships_present', 'no indicator rows at all'
where not exists (select 1 from mart.indicator_value)
