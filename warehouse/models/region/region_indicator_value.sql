-- model: mart.region_indicator_value
-- materialized: table
-- reads: counties.indicator_evidence, counties.indicator_catalogue
-- grain: year, area_code, indicator_code
-- Region (province) roll-up from the counties' published partitions (warehouse/province.py:
-- counties.indicator_evidence, the union of their mart.indicator_evidence Parquet files;
-- counties.indicator_catalogue, the indicator catalogue).
-- Each county and the region: sums of numerators over sums of denominators, medians over all
-- records, so the totals equal one combined run over the same records. Counts without records
-- are 0; rates without a denominator and missing return figures are NULL.
with grid as (
    select y.year, a.area_code, a.area_level, c.indicator_code, c.kind, c.source
    from (select distinct year from counties.indicator_evidence) y
    cross join (
        select distinct county_code as area_code, 'county' as area_level from counties.indicator_evidence
        union all
        select $region_code, 'region'
    ) a
    cross join counties.indicator_catalogue c
),
aggregated as (
    select year, county_code as area_code, indicator_code,
           sum(numerator) as numerator, sum(denominator) as denominator, median(measure) as measure,
           max(qualifier) as qualifier
    from counties.indicator_evidence
    group by year, county_code, indicator_code
    union all
    select year, $region_code, indicator_code,
           sum(numerator), sum(denominator), median(measure), max(qualifier)
    from counties.indicator_evidence
    group by year, indicator_code
),
joined as (
    select g.*, a.measure, a.qualifier,
           case
               when g.source = 'returns' or g.kind = 'median' then a.numerator
               else coalesce(a.numerator, 0)
           end as numerator,
           case when g.kind in ('rate', 'mean', 'median') then coalesce(a.denominator, 0) else a.denominator end
               as denominator
    from grid g
    left join aggregated a
      on a.year = g.year and a.area_code = g.area_code and a.indicator_code = g.indicator_code
)
select year, area_code, area_level, indicator_code, kind,
       case
           when kind in ('count', 'amount') then cast(numerator as double)
           when kind = 'median' then measure
           when coalesce(denominator, 0) = 0 then null
           else cast(numerator as double) / cast(denominator as double)
       end as value,
       cast(numerator as decimal(18, 2)) as numerator,
       cast(denominator as decimal(18, 2)) as denominator,
       qualifier
from joined
order by year, area_level desc, area_code, indicator_code
