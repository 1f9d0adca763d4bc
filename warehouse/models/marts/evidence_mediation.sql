-- model: temp.evidence_mediation
-- materialized: temp
-- reads: core.mediation_case, ref.township
-- tags: evidence
-- Evidence for MED01-MED05: one row per (indicator, case counted), from current (as-of) core cases.
with cases as (
    select c.*, t.county_code
    from core.mediation_case c
    join ref.township t on t.code = c.township_code
    where c.valid_from <= $as_of and (c.valid_to is null or c.valid_to > $as_of)
      and not c.is_voided
),
concluded as (
    select *, year(concluded_date) as year
    from cases
    where outcome in ('成功', '失败', '终止') and concluded_date is not null
),
final as (
    select year(accepted_date) as year, county_code, township_code, 'MED01' as indicator_code,
           case_id, accepted_date as record_date, 1 as numerator, null as denominator
    from cases
    union all
    select year(accepted_date), county_code, township_code, 'MED04', case_id, accepted_date, 1, null
    from cases where is_joint_mediation or persons_involved >= 10
    union all
    select year, county_code, township_code, 'MED02', case_id, concluded_date,
           case when outcome = '成功' then 1 else 0 end, 1
    from concluded
    union all
    select year, county_code, township_code, 'MED03', case_id, concluded_date,
           case when performance_status = '已履行' then 1 else 0 end, 1
    from concluded where outcome = '成功' and performance_status is distinct from '未到期'
    union all
    select year, county_code, township_code, 'MED05', case_id, concluded_date,
           date_diff('day', accepted_date, concluded_date), 1
    from concluded
)
select cast(year as integer) as year, county_code, township_code, indicator_code,
       'mediation_case' as record_table, case_id as record_id, record_date,
       cast(numerator as decimal(18, 2)) as numerator, cast(denominator as decimal(18, 2)) as denominator,
       cast(null as double) as measure, cast(null as varchar) as qualifier
from final
