-- Validation trends (issue 4), queryable in the working and the published database.
-- validation_trend: failing rows per source table, township, rule and day, from the quarantine
-- (a row failing two rules counts once under each). open_rows: not yet resolved by a correction.
create view audit.validation_trend as
with failing as (
    select source, table_name, township_code, unnest(rules) as rule,
           cast(quarantined_at as date) as day, resolved_at
    from audit.quarantine
)
select source, table_name, township_code, rule, day,
       count(*) as failing_rows,
       count(*) filter (where resolved_at is null) as open_rows
from failing
group by source, table_name, township_code, rule, day;

-- validation_rule_trend: every expectation's result per source table, rule and day, from
-- audit.validation_result (all levels, warn included; no township: results are per batch).
create view audit.validation_rule_trend as
select b.source, v.table_name, v.rule, v.level, cast(v.validated_at as date) as day,
       count(distinct v.batch_id) as batches,
       sum(v.element_count) as checked_rows,
       sum(coalesce(v.unexpected_count, 0)) as failing_rows,
       count(*) filter (where not v.success) as failed_checks
from audit.validation_result v
left join audit.batch b on b.batch_id = v.batch_id
group by b.source, v.table_name, v.rule, v.level, day;
