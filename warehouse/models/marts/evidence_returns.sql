-- model: temp.evidence_returns
-- materialized: temp
-- reads: core.annual_return_item, ref.township, temp.quarantined_figure
-- tags: evidence
-- Evidence for the annual-return figures: the return items themselves. LIT02's numerator is item
-- LIT02A, its denominator item LIT02B. A figure reported as "200余" carries the qualifier '>=',
-- "约200" the qualifier '~'. An item whose figure is quarantined (temp.quarantined_figure: a failing
-- value in a newer file, or LIT02A / LIT02B for LIT02) is not counted anywhere.
with items as (
    select i.township_code, i.report_year as year, i.item_code, i.value_number, i.qualifier,
           i.filled_date, t.county_code
    from core.annual_return_item i
    join ref.township t on t.code = i.township_code
    anti join temp.quarantined_figure q
      on q.year = i.report_year and q.township_code = i.township_code
     and q.indicator_code = case when i.item_code in ('LIT02A', 'LIT02B') then 'LIT02' else i.item_code end
    where i.valid_from <= $as_of and (i.valid_to is null or i.valid_to > $as_of)
),
final as (
    select year, county_code, township_code, item_code as indicator_code, item_code,
           filled_date, value_number as numerator, null as denominator, qualifier
    from items where item_code not in ('LIT02A', 'LIT02B')
    union all
    select year, county_code, township_code, 'LIT02', item_code, filled_date,
           case when item_code = 'LIT02A' then value_number else 0 end,
           case when item_code = 'LIT02B' then value_number else 0 end,
           null
    from items where item_code in ('LIT02A', 'LIT02B')
)
select cast(year as integer) as year, county_code, township_code, indicator_code,
       'annual_return_item' as record_table, township_code || '|' || year || '|' || item_code as record_id,
       filled_date as record_date, cast(numerator as decimal(18, 2)) as numerator,
       cast(denominator as decimal(18, 2)) as denominator, cast(null as double) as measure, qualifier
from final
