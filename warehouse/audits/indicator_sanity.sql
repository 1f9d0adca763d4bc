-- severity: fail
-- Indicator sanity: rates in [0, 1], counts and amounts not negative, no NULL without a reason.
select 'indicator_sanity' as audit,
       year || ' ' || township_code || ' ' || indicator_code || ' = ' || coalesce(cast(value as varchar), 'NULL')
       || ' (' || status || ')' as detail
from mart.indicator_value
where (kind = 'rate' and (value < 0 or value > 1))
   or (kind in ('count', 'amount', 'median', 'mean') and value < 0)
   or (value is null and status = 'ok')
   or (numerator < 0 or denominator < 0)
