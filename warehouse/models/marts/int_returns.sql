-- Annual-return figures (LIT, OGI, PUB) per township-year and county-year; LIT02 = LIT02A / LIT02B.
-- A figure reported as "200余" keeps the qualifier '>='; a county total with any such figure does too.
with items as (
    select i.township_code, i.report_year as year, i.item_code, i.value_number, i.qualifier,
           t.county_code
    from core.annual_return_item i
    join ref.township t on t.code = i.township_code
    where i.valid_from <= $as_of and (i.valid_to is null or i.valid_to > $as_of)
),
final as (
    select year, county_code, township_code, item_code as indicator_code,
           sum(value_number) as numerator, null as denominator, max(qualifier) as qualifier
    from items
    where item_code not in ('LIT02A', 'LIT02B')
    group by grouping sets ((year, county_code, township_code, item_code), (year, county_code, item_code))
    union all
    select year, county_code, township_code, 'LIT02',
           sum(value_number) filter (where item_code = 'LIT02A'),
           sum(value_number) filter (where item_code = 'LIT02B'),
           null
    from items
    where item_code in ('LIT02A', 'LIT02B')
    group by grouping sets ((year, county_code, township_code), (year, county_code))
)
select year, county_code, township_code, indicator_code,
       cast(numerator as decimal(18, 2)) as numerator,
       cast(denominator as decimal(18, 2)) as denominator,
       cast(null as double) as value, qualifier
from final
