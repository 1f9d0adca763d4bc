-- model: temp.evidence_enforcement
-- materialized: temp
-- reads: core.enforcement_act, core.training_staff, ref.township, ref.workday
-- tags: evidence
-- Evidence for ENF01-ENF11: one row per (indicator, record counted), from current (as-of) core
-- acts. numerator/denominator are the record's contribution (a rate has one row per denominator
-- member, numerator 1 or 0); measure carries a duration for medians.
with acts as (
    select a.*, t.county_code
    from core.enforcement_act a
    join ref.township t on t.code = a.township_code
    where a.valid_from <= $as_of and (a.valid_to is null or a.valid_to > $as_of)
      and not a.is_voided
),
certificates as (
    select certificate_key, max(certificate_valid_until) as valid_until
    from core.training_staff
    where certificate_key is not null
      and valid_from <= $as_of and (valid_to is null or valid_to > $as_of)
    group by certificate_key
),
inspections as (
    select act_id, county_code, township_code, year(inspection_date) as year,
           inspection_date as act_date, entry_channel = '网上办案' as on_platform,
           officer_certificate_keys, officer_count
    from acts
    where act_type = '检查' and inspection_date is not null
),
penalty_acts as (
    select act_id, county_code, township_code, year(decision_date) as year,
           decision_date as act_date, decision_number, entry_channel = '网上办案' as on_platform,
           coalesce(is_legal_reviewed and legal_review_date <= decision_date, false) as is_reviewed_in_time,
           published_date,
           coalesce(fine_amount_yuan, 0) + coalesce(confiscated_amount_yuan, 0) as amount_yuan,
           officer_certificate_keys, officer_count
    from acts
    where act_type = '处罚' and not is_not_penalised and decision_date is not null
),
calendar as (
    select max(workday_seq) as last_seq from ref.workday
),
timeliness as (
    -- at most 7 working days after the decision date up to the publication date (State Council
    -- calendar, ref.workday); NULL when the calendar does not reach far enough to tell (ENF08 then
    -- has status calendar_not_covered); never published: not in time
    select p.*,
           case
               when p.published_date is null then false
               when wd.day is null then null
               when wp.day is not null then wp.workday_seq - wd.workday_seq <= 7
               when p.published_date > p.act_date and (select last_seq from calendar) - wd.workday_seq > 7 then false
           end as is_published_in_time
    from penalty_acts p
    left join ref.workday wd on wd.day = p.act_date
    left join ref.workday wp on wp.day = p.published_date
),
decisions as (
    select p.county_code, p.township_code, p.year, p.decision_number,
           min(p.act_date) as decision_date,
           bool_or(p.on_platform) as on_platform,
           bool_and(p.is_reviewed_in_time) as is_reviewed_in_time,
           case when bool_or(p.is_published_in_time is null) then null
                else bool_and(p.is_published_in_time) end as is_published_in_time,
           sum(p.amount_yuan) as amount_yuan
    from timeliness p
    group by p.county_code, p.township_code, p.year, p.decision_number
),
all_acts as (
    select act_id, county_code, township_code, year, act_date, officer_certificate_keys, officer_count
    from inspections
    union all
    select act_id, county_code, township_code, year, act_date, officer_certificate_keys, officer_count
    from penalty_acts
),
act_officers as (
    select act_id, act_date, unnest(officer_certificate_keys) as certificate_key from all_acts
),
valid_officers as (
    select o.act_id, count(*) as valid_officer_count
    from act_officers o
    join certificates c on c.certificate_key = o.certificate_key and c.valid_until >= o.act_date
    group by o.act_id
),
final as (
    select year, county_code, township_code, 'ENF01' as indicator_code, 'enforcement_act' as record_table,
           act_id as record_id, act_date as record_date, 1 as numerator, null as denominator, null as measure
    from inspections
    union all
    select year, county_code, township_code, 'ENF03', 'enforcement_act', act_id, act_date, 1, null, null
    from inspections where on_platform
    union all
    select year, county_code, township_code, 'ENF02', 'penalty_decision', decision_number, decision_date, 1, null, null
    from decisions
    union all
    select year, county_code, township_code, 'ENF04', 'penalty_decision', decision_number, decision_date, 1, null, null
    from decisions where on_platform
    union all
    select year, county_code, township_code, 'ENF05', 'enforcement_act', act_id, act_date,
           case when on_platform then 1 else 0 end, 1, null
    from inspections
    union all
    select year, county_code, township_code, 'ENF05', 'penalty_decision', decision_number, decision_date,
           case when on_platform then 1 else 0 end, 1, null
    from decisions
    union all
    select year(decision_date), county_code, township_code, 'ENF06', 'enforcement_act', act_id, decision_date,
           1, null, null
    from acts
    where act_type = '处罚' and is_not_penalised and not_penalised_reason = '首违不罚' and decision_date is not null
    union all
    select year, county_code, township_code, 'ENF07', 'penalty_decision', decision_number, decision_date,
           case when is_reviewed_in_time then 1 else 0 end, 1, null
    from decisions
    union all
    select year, county_code, township_code, 'ENF08', 'penalty_decision', decision_number, decision_date,
           case when is_published_in_time then 1 when not is_published_in_time then 0 end, 1, null
    from decisions
    union all
    select a.year, a.county_code, a.township_code, 'ENF09', 'enforcement_act', a.act_id, a.act_date,
           case when a.officer_count >= 2 and coalesce(v.valid_officer_count, 0) = a.officer_count
                then 1 else 0 end,
           1, null
    from all_acts a
    left join valid_officers v on v.act_id = a.act_id
    union all
    select year, county_code, township_code, 'ENF10', 'penalty_decision', decision_number, decision_date,
           amount_yuan, null, null
    from decisions
    union all
    select year(closed_date), county_code, township_code, 'ENF11', 'enforcement_act', act_id, closed_date,
           null, 1, date_diff('day', filed_date, closed_date)
    from acts
    where act_type = '处罚' and closed_date is not null and filed_date is not null
)
select cast(year as integer) as year, county_code, township_code, indicator_code, record_table, record_id,
       record_date, cast(numerator as decimal(18, 2)) as numerator,
       cast(denominator as decimal(18, 2)) as denominator, cast(measure as double) as measure,
       cast(null as varchar) as qualifier
from final
