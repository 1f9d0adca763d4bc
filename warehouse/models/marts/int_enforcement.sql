-- ENF01-ENF11 per township-year and per county-year (grouping sets), from current (as-of) core acts.
-- Rates keep numerator and denominator; the county is sum over sum, never an average of rates.
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
decisions as (
    select p.county_code, p.township_code, p.year, p.decision_number,
           bool_or(p.on_platform) as on_platform,
           bool_and(p.is_reviewed_in_time) as is_reviewed_in_time,
           -- working days after the decision date up to the publication date (State Council calendar)
           bool_and(coalesce(wp.workday_seq - wd.workday_seq <= 7, false)) as is_published_in_time,
           sum(p.amount_yuan) as amount_yuan
    from penalty_acts p
    left join ref.workday wd on wd.day = p.act_date
    left join ref.workday wp on wp.day = p.published_date
    group by p.county_code, p.township_code, p.year, p.decision_number
),
waivers as (
    select county_code, township_code, year(decision_date) as year, act_id
    from acts
    where act_type = '处罚' and is_not_penalised and not_penalised_reason = '首违不罚'
      and decision_date is not null
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
certified as (
    select a.county_code, a.township_code, a.year,
           a.officer_count >= 2 and coalesce(v.valid_officer_count, 0) = a.officer_count as is_certified
    from all_acts a
    left join valid_officers v on v.act_id = a.act_id
),
handled as (
    select county_code, township_code, year, on_platform from inspections
    union all
    select county_code, township_code, year, on_platform from decisions
),
closed_cases as (
    select county_code, township_code, year(closed_date) as year,
           date_diff('day', filed_date, closed_date) as duration_days
    from acts
    where act_type = '处罚' and closed_date is not null and filed_date is not null
),
final as (
    select year, county_code, township_code, 'ENF01' as indicator_code,
           count(*) as numerator, null as denominator, null as value
    from inspections group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF03', count_if(on_platform), null, null
    from inspections group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF02', count(*), null, null
    from decisions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF04', count_if(on_platform), null, null
    from decisions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF05', count_if(on_platform), count(*), null
    from handled group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF06', count(*), null, null
    from waivers group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF07', count_if(is_reviewed_in_time), count(*), null
    from decisions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF08', count_if(is_published_in_time), count(*), null
    from decisions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF09', count_if(is_certified), count(*), null
    from certified group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF10', sum(amount_yuan), null, null
    from decisions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'ENF11', null, count(*), median(duration_days)
    from closed_cases group by grouping sets ((year, county_code, township_code), (year, county_code))
)
select year, county_code, township_code, indicator_code,
       cast(numerator as decimal(18, 2)) as numerator,
       cast(denominator as decimal(18, 2)) as denominator,
       cast(value as double) as value, cast(null as varchar) as qualifier
from final
