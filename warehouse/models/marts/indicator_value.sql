-- mart.indicator_value: every township and county x year x indicator of the catalogue, aggregated
-- from mart.indicator_evidence. Counts with no records are 0; a rate or mean with a zero
-- denominator is NULL with status 'no_data'; a township without an annual return has NULL return
-- figures, status 'missing_return'. County rows are sums of numerators over sums of denominators
-- (ENF11: the median over all the county's cases). Comparisons: rank among the county's
-- townships (best first, by the indicator's direction), change against the previous year, gap
-- to the catalogue's target and a traffic light.
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
           max(qualifier) as qualifier
    from mart.indicator_evidence
    group by grouping sets ((year, county_code, township_code, indicator_code), (year, county_code, indicator_code))
),
joined as (
    select g.*, r.numerator as r_numerator, r.denominator as r_denominator, r.measure as r_measure,
           r.qualifier, r.indicator_code is not null as has_result
    from grid g
    left join aggregated r
      on r.year = g.year and r.area_code = g.township_code and r.indicator_code = g.indicator_code
),
shaped as (
    select *,
        case
            when source = 'returns' then r_numerator
            when kind = 'median' then null
            else coalesce(r_numerator, 0)
        end as numerator,
        case
            when source = 'returns' then r_denominator
            when kind in ('rate', 'mean', 'median') then coalesce(r_denominator, 0)
        end as denominator
    from joined
),
valued as (
    select *,
        case
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
        qualifier,
        case
            when source = 'returns' and not has_result then 'missing_return'
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
        sort_order
    from compared
)
select * exclude (sort_order)
from final
order by year, township_code, sort_order
