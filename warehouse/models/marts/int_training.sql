-- TRN01-TRN09 per township-year and county-year, from current (as-of) training rosters.
with sessions as (
    select s.township_code, s.session_id, s.session_type, s.hours, year(s.session_date) as year,
           t.county_code
    from core.training_session s
    join ref.township t on t.code = s.township_code
    where s.valid_from <= $as_of and (s.valid_to is null or s.valid_to > $as_of)
),
attendance as (
    select a.township_code, a.person_key, a.is_passed, s.year, s.session_type, s.hours, s.county_code
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
roster_coverage as (
    select r.county_code, r.township_code, r.year, r.is_officer and r.certificate_key is not null as is_certified_officer,
           h.person_key is not null as attended, coalesce(h.hours, 0) as hours
    from roster r
    left join person_hours h
      on h.township_code = r.township_code and h.year = r.year and h.person_key = r.person_key
),
final as (
    select year, county_code, township_code, 'TRN01' as indicator_code,
           count_if(session_type = '专题培训') as numerator, null as denominator
    from sessions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'TRN03', count_if(session_type = '领导干部法治课'), null
    from sessions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'TRN04', count_if(session_type = '部门学法'), null
    from sessions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'TRN05', count_if(session_type = '执法培训'), null
    from sessions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'TRN06', count_if(session_type = '法律知识测试'), null
    from sessions group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'TRN02', count_if(session_type = '专题培训'), null
    from attendance group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'TRN09',
           count_if(session_type = '法律知识测试' and is_passed), count_if(session_type = '法律知识测试')
    from attendance group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'TRN07', count_if(attended), count(*)
    from roster_coverage group by grouping sets ((year, county_code, township_code), (year, county_code))
    union all
    select year, county_code, township_code, 'TRN08',
           count_if(is_certified_officer and hours >= $required_hours), count_if(is_certified_officer)
    from roster_coverage group by grouping sets ((year, county_code, township_code), (year, county_code))
)
select year, county_code, township_code, indicator_code,
       cast(numerator as decimal(18, 2)) as numerator,
       cast(denominator as decimal(18, 2)) as denominator,
       cast(null as double) as value, cast(null as varchar) as qualifier
from final
