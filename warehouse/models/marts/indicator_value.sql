-- mart.indicator_value: every township and county x year x indicator of the catalogue.
-- Counts with no records are 0; a rate or mean with a zero denominator is NULL with status
-- 'no_data'; a township without an annual return has NULL return figures, status 'missing_return'.
with years as (
    select unnest(range($first_year, $last_year + 1)) as year
),
areas as (
    select code as township_code, name as township_name, 'township' as area_level from ref.township
    union all
    select distinct county_code, county_name, 'county' from ref.township
),
grid as (
    select y.year, a.township_code, a.township_name, a.area_level,
           c.indicator_code, c.name_zh, c.name_en, c.unit, c.kind, c.source, c.sort_order
    from years y cross join areas a cross join ref.indicator_catalogue c
),
results as (
    select *, coalesce(township_code, county_code) as area_code from int_enforcement
    union all by name
    select *, coalesce(township_code, county_code) as area_code from int_mediation
    union all by name
    select *, coalesce(township_code, county_code) as area_code from int_training
    union all by name
    select *, coalesce(township_code, county_code) as area_code from int_returns
),
joined as (
    select g.*, r.numerator as r_numerator, r.denominator as r_denominator, r.value as r_value,
           r.qualifier, r.indicator_code is not null as has_result
    from grid g
    left join results r
      on r.year = g.year and r.area_code = g.township_code and r.indicator_code = g.indicator_code
),
shaped as (
    select *,
        case
            when source = 'returns' then r_numerator
            when kind in ('count', 'amount') then coalesce(r_numerator, 0)
            else coalesce(r_numerator, case when kind = 'median' then null else 0 end)
        end as numerator,
        case
            when source = 'returns' then r_denominator
            when kind in ('rate', 'mean', 'median') then coalesce(r_denominator, 0)
        end as denominator
    from joined
),
final as (
    select
        cast(year as integer) as year, township_code, township_name, area_level,
        indicator_code, name_zh as indicator_name_zh, name_en as indicator_name_en, unit, kind,
        case
            when source = 'returns' and not has_result then null
            when kind in ('count', 'amount') then cast(numerator as double)
            when kind = 'median' then r_value
            when coalesce(denominator, 0) = 0 then null
            else cast(numerator as double) / cast(denominator as double)
        end as value,
        cast(numerator as decimal(18, 2)) as numerator,
        cast(denominator as decimal(18, 2)) as denominator,
        qualifier,
        case
            when source = 'returns' and not has_result then 'missing_return'
            when kind in ('rate', 'mean') and coalesce(denominator, 0) = 0 then 'no_data'
            when kind = 'median' and r_value is null then 'no_data'
            else 'ok'
        end as status,
        sort_order
    from shaped
)
select * exclude (sort_order)
from final
order by year, township_code, sort_order
