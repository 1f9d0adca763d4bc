-- model: mart.indicator_value
-- materialized: table
-- reads: mart.indicator_evidence, ref.township, ref.indicator_catalogue, temp.source_delivery, temp.quarantined_figure
-- grain: year, township_code, indicator_code
-- mart.indicator_value: every township and county x year x indicator of the catalogue, aggregated
-- from mart.indicator_evidence. County rows are sums of numerators over sums of denominators
-- (ENF11: the median over all the county's cases). Comparisons: rank among the county's
-- townships (best first, by the indicator's direction), change against the previous year, gap
-- to the catalogue's target and a traffic light.
--
-- status (docs/indicators.md), first that applies:
--   township rows of training and returns figures:
--     missing_source        the township-year's ledger / return was never delivered or every file
--                           of it was refused (source_delivery), or the return lacks the item
--                           (LIT02: either of LIT02A, LIT02B): value NULL, never 0
--     quarantined           an input record is in quarantine (quarantined_figure): a return item
--                           (and LIT02 from it) is not computed (NULL); a training figure counts
--                           the accepted records only
--   calendar_not_covered    ENF08, a decision whose timeliness the holiday calendar cannot tell: NULL
--   incomplete              county rows: townships missing for the figure (missing_townships > 0)
--   no_data                 a rate or mean with a zero denominator: NULL
--   ok
-- source_files: the files a township's training or returns figures come from.
with years as (
    select unnest(range($first_year, $last_year + 1)) as year
),
areas as (
    select code as township_code, name as township_name, county_code, 'township' as area_level
    from ref.township
    union all
    select distinct county_code, county_name, county_code, 'county' from ref.township
),
grid as (
    select y.year, a.township_code, a.township_name, a.county_code, a.area_level,
           c.indicator_code, c.name_zh, c.name_en, c.unit, c.kind, c.source, c.direction,
           c.target_value, c.target_amber_margin, c.sort_order
    from years y cross join areas a cross join ref.indicator_catalogue c
),
aggregated as (
    select year, coalesce(township_code, county_code) as area_code, indicator_code,
           sum(numerator) as numerator, sum(denominator) as denominator, median(measure) as measure,
           max(qualifier) as qualifier, count(*) as records,
           count(*) filter (where indicator_code = 'ENF08' and numerator is null) as undecided
    from mart.indicator_evidence
    group by grouping sets ((year, county_code, township_code, indicator_code), (year, county_code, indicator_code))
),
joined as (
    select g.*, r.numerator as r_numerator, r.denominator as r_denominator, r.measure as r_measure,
           r.qualifier, r.indicator_code is not null as has_result,
           g.area_level = 'township' and g.source in ('training', 'returns') as from_files,
           d.township_code is not null as is_delivered, d.source_files,
           q.indicator_code is not null as is_quarantined,
           case when g.indicator_code = 'LIT02' then coalesce(r.records, 0) = 2 else r.indicator_code is not null end
               as has_item,
           coalesce(r.undecided, 0) > 0 as is_undecided
    from grid g
    left join aggregated r
      on r.year = g.year and r.area_code = g.township_code and r.indicator_code = g.indicator_code
    left join temp.source_delivery d
      on d.source = g.source and d.year = g.year and d.township_code = g.township_code
    left join temp.quarantined_figure q
      on q.year = g.year and q.township_code = g.township_code and q.indicator_code = g.indicator_code
),
gaps as (
    select *,
        case
            when from_files and not is_delivered then 'missing_source'
            when from_files and is_quarantined then 'quarantined'
            when from_files and source = 'returns' and not has_item then 'missing_source'
            when is_undecided then 'calendar_not_covered'
        end as gap
    from joined
),
missing as (
    select year, county_code, indicator_code, count(*) as missing_townships,
           count(*) filter (where gap = 'missing_source') as absent_townships
    from gaps
    where gap in ('missing_source', 'quarantined')
    group by all
),
townships as (
    select county_code, count(*) as townships from ref.township group by all
),
flagged as (
    select g.*,
        case when g.area_level = 'county' then coalesce(m.missing_townships, 0) end as missing_townships,
        g.area_level = 'county' and coalesce(m.absent_townships, 0) = n.townships as nothing_to_sum
    from gaps g
    left join missing m
      on g.area_level = 'county' and m.year = g.year and m.county_code = g.county_code
     and m.indicator_code = g.indicator_code
    left join townships n on n.county_code = g.county_code
),
shaped as (
    select *,
        case
            when gap in ('missing_source', 'calendar_not_covered') or nothing_to_sum then null
            when gap = 'quarantined' and source = 'returns' then null
            when source = 'returns' then r_numerator
            when kind = 'median' then null
            else coalesce(r_numerator, 0)
        end as numerator,
        case
            when gap in ('missing_source', 'calendar_not_covered') or nothing_to_sum then null
            when gap = 'quarantined' and source = 'returns' then null
            when source = 'returns' then r_denominator
            when kind in ('rate', 'mean', 'median') then coalesce(r_denominator, 0)
        end as denominator
    from flagged
),
valued as (
    select *,
        case
            when gap in ('missing_source', 'calendar_not_covered') or nothing_to_sum then null
            when gap = 'quarantined' and source = 'returns' then null
            when source = 'returns' and not has_result then null
            when kind in ('count', 'amount') then cast(numerator as double)
            when kind = 'median' then r_measure
            when coalesce(denominator, 0) = 0 then null
            else cast(numerator as double) / cast(denominator as double)
        end as value
    from shaped
),
compared as (
    select *,
        case when value is not null and area_level = 'township' then
            rank() over (
                partition by year, county_code, indicator_code, area_level, value is null
                order by case when direction = 'lower_is_better' then value else -value end
            )
        end as rank_in_county,
        lag(value) over (partition by township_code, indicator_code order by year) as previous_value
    from valued
),
final as (
    select
        cast(year as integer) as year, township_code, township_name, area_level,
        indicator_code, name_zh as indicator_name_zh, name_en as indicator_name_en, unit, kind,
        value,
        cast(numerator as decimal(18, 2)) as numerator,
        cast(denominator as decimal(18, 2)) as denominator,
        case when value is not null then qualifier end as qualifier,
        case
            when gap is not null then gap
            when missing_townships > 0 then 'incomplete'
            when value is null then 'no_data'
            else 'ok'
        end as status,
        cast(rank_in_county as integer) as rank_in_county,
        previous_value,
        value - previous_value as change_from_previous,
        target_value,
        value - target_value as gap_to_target,
        case
            when value is null or target_value is null then null
            when (direction = 'lower_is_better' and value <= target_value)
              or (direction <> 'lower_is_better' and value >= target_value) then 'green'
            when (direction = 'lower_is_better' and value <= target_value + target_amber_margin)
              or (direction <> 'lower_is_better' and value >= target_value - target_amber_margin) then 'amber'
            else 'red'
        end as traffic_light,
        cast(missing_townships as integer) as missing_townships,
        case when from_files then source_files end as source_files,
        sort_order
    from compared
)
select * exclude (sort_order)
from final
order by year, township_code, sort_order
