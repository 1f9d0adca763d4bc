-- MED01-MED05 per township-year and county-year, from current (as-of) core cases.
with cases as (
    select c.*, t.county_code
    from core.mediation_case c
    join ref.township t on t.code = c.township_code
    where c.valid_from <= $as_of and (c.valid_to is null or c.valid_to > $as_of)
      and not c.is_voided
),
accepted as (
    select county_code, township_code, year(accepted_date) as year,
           is_joint_mediation or persons_involved >= 10 as is_major_joint
    from cases
),
concluded as (
    select county_code, township_code, year(concluded_date) as year, outcome, performance_status,
           date_diff('day', accepted_date, concluded_date) as days_to_conclude
    from cases
    where outcome in ('成功', '失败', '终止') and concluded_date is not null
),
final as (
    select year, county_code, township_code, 'MED01' as indicator_code,
           count(*) as numerator, null as denominator
    from accepted group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'MED04', count_if(is_major_joint), null
    from accepted group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'MED02', count_if(outcome = '成功'), count(*)
    from concluded group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'MED03',
           count_if(outcome = '成功' and performance_status = '已履行'),
           count_if(outcome = '成功' and performance_status is distinct from '未到期')
    from concluded group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'MED05', sum(days_to_conclude), count(*)
    from concluded group by grouping sets ((year, county_code, township_code), (year, county_code))
)
select year, county_code, township_code, indicator_code,
       cast(numerator as decimal(18, 2)) as numerator,
       cast(denominator as decimal(18, 2)) as denominator,
       cast(null as double) as value, cast(null as varchar) as qualifier
from final
