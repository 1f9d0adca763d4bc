-- model: temp.evidence_training
-- materialized: temp
-- reads: core.training_session, core.training_attendance, core.training_staff, ref.township
-- tags: evidence
-- Evidence for TRN01-TRN09: sessions, attendances and roster persons counted, from current
-- (as-of) training rosters. Persons appear only by their keyed pseudonym.
with sessions as (
    select s.township_code, s.session_id, s.session_type, s.session_date, s.hours,
           year(s.session_date) as year, t.county_code
    from core.training_session s
    join ref.township t on t.code = s.township_code
    where s.valid_from <= $as_of and (s.valid_to is null or s.valid_to > $as_of)
),
attendance as (
    select a.township_code, a.session_id, a.person_key, a.is_passed, s.year, s.session_type,
           s.session_date, s.hours, s.county_code
    from core.training_attendance a
    join sessions s on s.township_code = a.township_code and s.session_id = a.session_id
    where a.valid_from <= $as_of and (a.valid_to is null or a.valid_to > $as_of)
),
roster as (
    select r.township_code, r.roster_year as year, r.person_key, r.is_officer, r.certificate_key,
           t.county_code
    from core.training_staff r
    join ref.township t on t.code = r.township_code
    where r.valid_from <= $as_of and (r.valid_to is null or r.valid_to > $as_of)
),
person_hours as (
    select township_code, year, person_key, sum(hours) as hours
    from attendance group by township_code, year, person_key
),
coverage as (
    select r.county_code, r.township_code, r.year, r.person_key,
           r.is_officer and r.certificate_key is not null as is_certified_officer,
           h.person_key is not null as attended, coalesce(h.hours, 0) as hours
    from roster r
    left join person_hours h
      on h.township_code = r.township_code and h.year = r.year and h.person_key = r.person_key
),
session_codes as (
    select * from (values ('专题培训', 'TRN01'), ('领导干部法治课', 'TRN03'), ('部门学法', 'TRN04'),
                          ('执法培训', 'TRN05'), ('法律知识测试', 'TRN06')) v(session_type, indicator_code)
),
final as (
    select s.year, s.county_code, s.township_code, c.indicator_code, 'training_session' as record_table,
           s.session_id as record_id, s.session_date as record_date, 1 as numerator, null as denominator
    from sessions s join session_codes c using (session_type)
    union all
    select year, county_code, township_code, 'TRN02', 'training_attendance', session_id || '|' || person_key,
           session_date, 1, null
    from attendance where session_type = '专题培训'
    union all
    select year, county_code, township_code, 'TRN09', 'training_attendance', session_id || '|' || person_key,
           session_date, case when is_passed then 1 else 0 end, 1
    from attendance where session_type = '法律知识测试'
    union all
    select year, county_code, township_code, 'TRN07', 'training_staff', person_key, null,
           case when attended then 1 else 0 end, 1
    from coverage
    union all
    select year, county_code, township_code, 'TRN08', 'training_staff', person_key, null,
           case when hours >= $required_hours then 1 else 0 end, 1
    from coverage where is_certified_officer
)
select cast(year as integer) as year, county_code, township_code, indicator_code, record_table, record_id,
       record_date, cast(numerator as decimal(18, 2)) as numerator,
       cast(denominator as decimal(18, 2)) as denominator, cast(null as double) as measure,
       cast(null as varchar) as qualifier
from final
